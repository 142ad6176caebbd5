//! Synchronization primitives, asyncio-rs against tokio's own, in one run:
//! a bounded queue (maxsize 128) carrying one million items, a Barrier of
//! 1,000 parties for 100 rounds, and 1,000 tasks each taking a contended Lock
//! 1,000 times.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use asyncio_bench::sync::*;
use asyncio_bench::workloads::tokio_rt;

fn queue(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("queue_bounded_128_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt();
    g.bench_function("asyncio", |b| b.iter(|| asyncio_queue(&lp, N)));
    g.bench_function("tokio_mpsc", |b| b.iter(|| tokio_mpsc_bounded(&rt, N)));
    g.finish();
}

fn barrier(c: &mut Criterion) {
    const PARTIES: usize = 1_000;
    const ROUNDS: usize = 100;
    let mut g = c.benchmark_group("barrier_1000x100");
    g.sample_size(10);
    g.throughput(Throughput::Elements((PARTIES * ROUNDS) as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt();
    g.bench_function("asyncio", |b| {
        b.iter(|| asyncio_barrier(&lp, PARTIES, ROUNDS))
    });
    g.bench_function("tokio", |b| b.iter(|| tokio_barrier(&rt, PARTIES, ROUNDS)));
    g.finish();
}

fn lock(c: &mut Criterion) {
    const TASKS: usize = 1_000;
    const TIMES: usize = 1_000;
    let mut g = c.benchmark_group("lock_contended_1000x1000");
    g.sample_size(10);
    g.throughput(Throughput::Elements((TASKS * TIMES) as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt();
    g.bench_function("asyncio", |b| b.iter(|| asyncio_lock(&lp, TASKS, TIMES)));
    g.bench_function("tokio_mutex", |b| b.iter(|| tokio_mutex(&rt, TASKS, TIMES)));
    g.finish();
}

criterion_group!(benches, queue, barrier, lock);
criterion_main!(benches);
