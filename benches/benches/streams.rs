//! Streams on loopback, asyncio-rs against tokio's current-thread runtime:
//! `tcp_echo` (100 connections exchanging 64-byte messages, one thread) and
//! `http_hello` (hyper's hello world under 50 keep-alive connections from a
//! load generator on another thread).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use asyncio_bench::net::*;

fn tcp_echo(c: &mut Criterion) {
    const N: usize = 20_000;
    let mut g = c.benchmark_group("tcp_echo_100x64B");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt_net();
    g.bench_function("asyncio", |b| b.iter(|| asyncio_tcp_echo(&lp, N)));
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| tokio_tcp_echo(&rt, N))
    });
    g.finish();
    take_latencies();
}

fn http_hello(c: &mut Criterion) {
    const N: usize = 5_000;
    let mut g = c.benchmark_group("http_hello_50_keepalive");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt_net();
    g.bench_function("asyncio_hyper", |b| b.iter(|| asyncio_http_hello(&lp, N)));
    g.bench_function("tokio_hyper", |b| b.iter(|| tokio_http_hello(&rt, N)));
    g.finish();
}

criterion_group!(benches, tcp_echo, http_hello);
criterion_main!(benches);
