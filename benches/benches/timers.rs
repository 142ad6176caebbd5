//! Timers and cross-thread hand-off, asyncio-rs against tokio in one run:
//! one million tasks each sleeping a pseudo-random 0–100 ms, and 100,000
//! `call_soon_threadsafe` calls against tokio's `Handle::spawn`; and a
//! million timeouts set and cancelled, around a ready future and around one
//! that suspends once (so the timer is armed), against `tokio::time::timeout`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use asyncio_bench::timers::*;

fn sleepers(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("sleep_0_100ms_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt_timers();
    g.bench_function("asyncio", |b| b.iter(|| asyncio_sleepers(&lp, N)));
    g.bench_function("tokio", |b| b.iter(|| tokio_sleepers(&rt, N)));
    g.finish();
}

fn threadsafe(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut g = c.benchmark_group("threadsafe_100k");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt_timers();
    g.bench_function("asyncio_call_soon_threadsafe", |b| {
        b.iter(|| asyncio_threadsafe(&lp, N))
    });
    g.bench_function("tokio_handle_spawn", |b| {
        b.iter(|| tokio_threadsafe(&rt, N))
    });
    g.finish();
}

fn timeouts(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt_timers();
    let mut g = c.benchmark_group("timeout_set_cancel_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("asyncio", |b| b.iter(|| asyncio_timeout_set_cancel(&lp, N)));
    g.bench_function("tokio", |b| b.iter(|| tokio_timeout_set_cancel(&rt, N)));
    g.finish();
    let mut g = c.benchmark_group("timeout_armed_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("asyncio", |b| b.iter(|| asyncio_timeout_armed(&lp, N)));
    g.bench_function("tokio", |b| b.iter(|| tokio_timeout_armed(&rt, N)));
    g.finish();
}

criterion_group!(benches, sleepers, threadsafe, timeouts);
criterion_main!(benches);
