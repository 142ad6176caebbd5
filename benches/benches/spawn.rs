//! Spawn paths: the ex_6_2 shape of the asyncio tutorial series this project
//! follows (one million trivial tasks created lazily, then all awaited) on
//! asyncio-rs, tokio and async-executor, plus the floor and `current_task()`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use asyncio_bench::workloads::*;

const N: usize = 1_000_000;

fn spawn_lazy(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_lazy_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    let rt = tokio_rt();
    let ex = async_executor::LocalExecutor::new();
    g.bench_function(BenchmarkId::from_parameter("floor_box_poll"), |b| {
        b.iter(|| floor_box_poll(N))
    });
    g.bench_function(BenchmarkId::from_parameter("asyncio"), |b| {
        b.iter(|| asyncio_spawn_lazy(&lp, N))
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| tokio_spawn_lazy(&rt, N))
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_local_set"), |b| {
        b.iter(|| tokio_local_spawn_lazy(&rt, N))
    });
    g.bench_function(BenchmarkId::from_parameter("async_executor_local"), |b| {
        b.iter(|| async_executor_spawn_lazy(&ex, N))
    });
    g.finish();
}

fn taskgroup_eager(c: &mut Criterion) {
    let mut g = c.benchmark_group("taskgroup_eager_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lp = eager_loop();
    let rt = tokio_rt();
    let ex = async_executor::LocalExecutor::new();
    g.bench_function("floor_box_poll", |b| b.iter(|| floor_box_poll(N)));
    g.bench_function("asyncio", |b| b.iter(|| asyncio_taskgroup_eager(&lp, N)));
    g.bench_function("tokio_joinset", |b| b.iter(|| tokio_joinset(&rt, N)));
    g.bench_function("async_executor_local", |b| {
        b.iter(|| async_executor_group(&ex, N))
    });
    g.finish();
}

fn suspend_once(c: &mut Criterion) {
    let mut g = c.benchmark_group("taskgroup_suspend_once_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let lazy = asyncio::EventLoop::new();
    let eager = eager_loop();
    g.bench_function("asyncio_lazy", |b| {
        b.iter(|| asyncio_taskgroup_suspend_once(&lazy, N))
    });
    g.bench_function("asyncio_eager", |b| {
        b.iter(|| asyncio_taskgroup_suspend_once(&eager, N))
    });
    g.finish();
}

fn current_task(c: &mut Criterion) {
    let mut g = c.benchmark_group("current_task_1M");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N as u64));
    let lp = asyncio::EventLoop::new();
    g.bench_function("asyncio", |b| b.iter(|| asyncio_current_task(&lp, N)));
    g.finish();
}

criterion_group!(
    benches,
    spawn_lazy,
    taskgroup_eager,
    suspend_once,
    current_task
);
criterion_main!(benches);
