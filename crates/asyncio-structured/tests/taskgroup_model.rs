//! TaskGroup against a plain sequential model of the loop.
//!
//! Each child yields `ticks` times and then succeeds, returns an error or
//! panics. The model replays what the loop does step by step — a FIFO ready
//! queue processed one snapshot per iteration, the group's abort arriving
//! through `call_soon`, cancellation taking effect at a child's next turn — and
//! must agree with the real group on which children failed (in order), which
//! succeeded and which were cancelled.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use asyncio_core::{EventLoop, yield_now};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{ChildFailure, TaskGroup};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Err,
    Panic,
}

#[derive(Debug, Clone, Copy)]
struct Child {
    ticks: u8,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Succeeded,
    Failed,
    Cancelled,
    Refused,
}

#[derive(Debug, PartialEq, Eq)]
struct Report {
    fates: Vec<Fate>,
    failure_order: Vec<usize>,
}

fn real(children: &[Child], eager: bool) -> Report {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    if eager {
        lp.set_task_factory(eager_task_factory);
    }
    let fates = Rc::new(RefCell::new(vec![Fate::Cancelled; children.len()]));
    let children = children.to_vec();
    let f = fates.clone();
    let failure_order = lp
        .run_until_complete(async move {
            let tg = TaskGroup::new();
            for (i, c) in children.iter().copied().enumerate() {
                let fc = f.clone();
                let r = tg.try_create_fallible_task_named(
                    async move {
                        for _ in 0..c.ticks {
                            yield_now().await;
                        }
                        match c.outcome {
                            Outcome::Ok => {
                                fc.borrow_mut()[i] = Fate::Succeeded;
                                Ok(())
                            }
                            Outcome::Err => {
                                fc.borrow_mut()[i] = Fate::Failed;
                                Err(std::io::Error::other(i.to_string()))
                            }
                            Outcome::Panic => {
                                fc.borrow_mut()[i] = Fate::Failed;
                                panic!("{i}")
                            }
                        }
                    },
                    i.to_string(),
                );
                // A group that is shutting down refuses the child (asyncio
                // raises RuntimeError); its future is never polled.
                if let Err(e) = r {
                    assert_eq!(e, asyncio_structured::TaskGroupError::ShuttingDown);
                    assert_eq!(f.borrow()[i], Fate::Cancelled, "never ran");
                    f.borrow_mut()[i] = Fate::Refused;
                }
            }
            match tg.join().await {
                Ok(()) => Vec::new(),
                Err(group) => group
                    .exceptions()
                    .iter()
                    .map(|x| match x {
                        ChildFailure::Error { task, .. } | ChildFailure::Panic { task, .. } => {
                            task.parse().unwrap()
                        }
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect(),
            }
        })
        .unwrap();
    let fates = fates.borrow().clone();
    Report {
        fates,
        failure_order,
    }
}

#[derive(Clone, Copy)]
enum Item {
    Step(usize),
    Abort,
}

struct Sim<'a> {
    children: &'a [Child],
    fates: Vec<Fate>,
    left: Vec<u8>,
    cancel_requested: Vec<bool>,
    done: Vec<bool>,
    failures: Vec<usize>,
    aborting: bool,
    abort_scheduled: bool,
    queue: VecDeque<Item>,
}

impl Sim<'_> {
    /// One step of child `i`; returns whether it failed just now.
    fn step(&mut self, i: usize) -> bool {
        if self.left[i] > 0 {
            self.left[i] -= 1;
            self.queue.push_back(Item::Step(i));
            return false;
        }
        self.done[i] = true;
        if self.children[i].outcome == Outcome::Ok {
            self.fates[i] = Fate::Succeeded;
            false
        } else {
            self.fates[i] = Fate::Failed;
            self.failures.push(i);
            true
        }
    }

    fn abort(&mut self) {
        if !self.aborting {
            self.aborting = true;
            for j in 0..self.children.len() {
                if !self.done[j] {
                    self.cancel_requested[j] = true;
                }
            }
        }
    }
}

fn model(children: &[Child], eager: bool) -> Report {
    let n = children.len();
    let mut sim = Sim {
        children,
        fates: vec![Fate::Cancelled; n],
        left: children.iter().map(|c| c.ticks).collect(),
        cancel_requested: vec![false; n],
        done: vec![false; n],
        failures: Vec::new(),
        aborting: false,
        abort_scheduled: false,
        queue: VecDeque::new(),
    };
    // The body creates the children (the main task's first step).
    for i in 0..n {
        if sim.aborting {
            sim.fates[i] = Fate::Refused;
            sim.done[i] = true;
        } else if eager {
            // A failure inside create_task aborts at once.
            if sim.step(i) {
                sim.abort();
            }
        } else {
            sim.queue.push_back(Item::Step(i));
        }
    }
    // Then the loop runs, one snapshot of the ready queue per iteration.
    while !sim.queue.is_empty() {
        for _ in 0..sim.queue.len() {
            match sim.queue.pop_front().expect("counted") {
                Item::Step(i) if sim.done[i] => {}
                Item::Step(i) if sim.cancel_requested[i] => {
                    sim.done[i] = true;
                    sim.fates[i] = Fate::Cancelled;
                }
                Item::Step(i) => {
                    if sim.step(i) && !sim.abort_scheduled {
                        sim.abort_scheduled = true;
                        sim.queue.push_back(Item::Abort);
                    }
                }
                Item::Abort => sim.abort(),
            }
        }
    }
    Report {
        fates: sim.fates,
        failure_order: sim.failures,
    }
}

fn child() -> impl Strategy<Value = Child> {
    (
        0u8..4,
        prop_oneof![6 => Just(Outcome::Ok), 1 => Just(Outcome::Err), 1 => Just(Outcome::Panic)],
    )
        .prop_map(|(ticks, outcome)| Child { ticks, outcome })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // Miri's isolation has no file system for the regressions file.
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn lazy_group_matches_the_model(children in prop::collection::vec(child(), 0..12)) {
        prop_assert_eq!(real(&children, false), model(&children, false));
    }

    #[test]
    fn eager_group_matches_the_model(children in prop::collection::vec(child(), 0..12)) {
        prop_assert_eq!(real(&children, true), model(&children, true));
    }
}
