//! Table tests of [`Machine::step`]: every path of the lifecycle contract (DESIGN §6) and the odd
//! orders around it, as scripts of inputs with exactly the actions each one must produce.
//!
//! Each case starts from a fresh machine with the default options (backoff 1 s, 2 s, 4 s; three
//! restarts per 300 s window; a fresh budget after 60 s up; 5 s shutdown grace, 2 s SIGTERM
//! grace). Besides the actions, the harness checks that the published changes form one chain
//! (each starts where the last ended), so no state is ever skipped.
#![expect(
    clippy::too_many_lines,
    reason = "each test is one table of cases, read top to bottom"
)]

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::lifecycle::state::{ExtensionHostState as S, StopOutcome};
use crate::lifecycle::status::ViewChange;
use crate::permissions::{Glob, Permission, ScopeRoot};
use crate::process::Containment;
use crate::process::SpawnError;
use crate::rpc::CloseReason;
use crate::sandbox::Layer;
use crate::sandbox::view::PathRule;
use crate::sandbox::{Backend, EnforcementReport, SandboxError};
use crate::wire::{ErrorCode, ErrorObject, PROTOCOL_VERSION};

mod failures;
mod odd;
mod stops;
mod views;

/// One input, `at` milliseconds after the case began, and exactly what it must produce.
struct Step {
    at: u64,
    input: Input,
    expect: Vec<Action>,
}

fn step(at: u64, input: Input, expect: Vec<Action>) -> Step {
    Step { at, input, expect }
}

fn script(parts: Vec<Vec<Step>>) -> Vec<Step> {
    parts.into_iter().flatten().collect()
}

/// Runs `cases` against fresh machines.
fn check(cases: Vec<(&str, Vec<Step>)>) {
    for (name, steps) in cases {
        let mut machine = Machine::new(&HostOptions::default(), FsGrants::default());
        let start = Instant::now();
        let mut state = S::Stopped;
        for (i, Step { at, input, expect }) in steps.into_iter().enumerate() {
            let shown = format!("{input:?}");
            let actions = machine.step(start + Duration::from_millis(at), input);
            assert_eq!(actions, expect, "{name}: step {i}, {shown}");
            for action in &actions {
                if let Action::Publish(change) = action {
                    assert_eq!(change.from, state, "{name}: step {i} skipped a state");
                    state = change.to;
                }
            }
        }
    }
}

fn w(n: u64) -> WaiterId {
    WaiterId(n)
}

fn answer(n: u64, answer: Answer) -> Action {
    Action::Answer(w(n), answer)
}

fn publish(from: S, to: S, reason: Reason) -> Action {
    publish_n(0, from, to, reason)
}

/// A change published after `restarts` restarts.
fn publish_n(restarts: u32, from: S, to: S, reason: Reason) -> Action {
    Action::Publish(Change {
        from,
        to,
        reason,
        restarts,
    })
}

fn arm(kind: TimerKind, ms: u64) -> Action {
    Action::Arm(kind, Duration::from_millis(ms))
}

fn backoff(attempt: u32, secs: u64) -> Reason {
    Reason::Backoff {
        attempt,
        delay: Duration::from_secs(secs),
    }
}

fn stopped(how: StopOutcome) -> Reason {
    Reason::Stopped { how }
}

fn exit(code: i32) -> Input {
    Input::ProcessExited(Exit {
        code: Some(code),
        ..Exit::default()
    })
}

fn exited(code: i32) -> Reason {
    Reason::Exited {
        code: Some(code),
        signal: None,
        output: Vec::new(),
    }
}

fn activated() -> Reason {
    Reason::Activated {
        commands: vec!["a.b".into()],
    }
}

fn enforced() -> Enforced {
    Enforced {
        pid: 42,
        containment: Containment::PidNamespace,
        sandbox: EnforcementReport {
            profile: "default".into(),
            backend: Backend::Landlock,
            layers: Vec::new(),
        },
    }
}

/// A spawn that failed for a reason a retry may fix.
fn spawn_io_error() -> Input {
    Input::SpawnFailed(LaunchError::Spawn(SpawnError::Io {
        program: "node".into(),
        source: std::io::Error::other("boom"),
    }))
}

fn spawn_io_reason() -> Reason {
    Reason::SpawnFailed {
        message: "could not start `node`: boom".into(),
    }
}

fn grants(glob: &str) -> FsGrants {
    FsGrants {
        workspace: vec!["/w".into()],
        allow: vec![PathRule {
            permission: Permission::FileSystemRead,
            root: ScopeRoot::Workspace,
            glob: Glob::parse(glob).unwrap(),
        }],
        deny: Vec::new(),
    }
}

fn view_changed(glob: &str) -> Reason {
    Reason::ViewChanged {
        grants: grants(glob).describe(),
    }
}

fn set_view(glob: &str, reply: u64, restarted: u64) -> Input {
    Input::SetView {
        grants: grants(glob),
        reply: w(reply),
        restarted: w(restarted),
    }
}

/// `start()` by waiter `waiter` at `at`, from Stopped up to Running.
fn start_to_running(at: u64, waiter: u64) -> Vec<Step> {
    script(vec![
        vec![step(
            at,
            Input::Start(w(waiter)),
            vec![
                publish(S::Stopped, S::Starting, Reason::Requested),
                Action::Spawn,
            ],
        )],
        bring_up(at, 0, &[waiter]),
    ])
}

/// From an [`Action::Spawn`] to Running, answering `answered`.
fn bring_up(at: u64, restarts: u32, answered: &[u64]) -> Vec<Step> {
    let mut running = vec![publish_n(restarts, S::Starting, S::Running, activated())];
    running.extend(answered.iter().map(|&n| answer(n, Answer::Started)));
    running.push(Action::StartWatchdog);
    vec![
        step(at, Input::Spawned, vec![Action::ReadStageReport]),
        step(
            at,
            Input::StageReported(Box::new(enforced())),
            vec![
                Action::RecordProcess(Box::new(enforced())),
                Action::Handshake,
            ],
        ),
        step(at, Input::HandshakeDone, vec![Action::JoinCgroup]),
        step(at, Input::CgroupJoined, vec![Action::Activate]),
        step(
            at,
            Input::Activated {
                commands: vec!["a.b".into()],
            },
            running,
        ),
    ]
}

/// Up to the handshake: spawned, and the sandbox reported.
fn start_to_handshake(waiter: u64) -> Vec<Step> {
    vec![
        step(
            0,
            Input::Start(w(waiter)),
            vec![
                publish(S::Stopped, S::Starting, Reason::Requested),
                Action::Spawn,
            ],
        ),
        step(0, Input::Spawned, vec![Action::ReadStageReport]),
        step(
            0,
            Input::StageReported(Box::new(enforced())),
            vec![
                Action::RecordProcess(Box::new(enforced())),
                Action::Handshake,
            ],
        ),
    ]
}

/// A running host's exit at `at` (after `restarts`), and the backoff for restart `attempt`.
fn exit_to_backoff(at: u64, code: i32, restarts: u32, attempt: u32, secs: u64) -> Step {
    step(
        at,
        exit(code),
        vec![
            Action::StopWatchdog,
            publish_n(restarts, S::Running, S::Unhealthy, exited(code)),
            Action::Signal(Signal::Kill),
            Action::Release,
            publish_n(
                restarts + 1,
                S::Unhealthy,
                S::Restarting,
                backoff(attempt, secs),
            ),
            arm(TimerKind::Backoff, secs * 1000),
        ],
    )
}

/// The backoff for restart `attempt` elapsed: Starting again.
fn backoff_elapsed(at: u64, restarts: u32, attempt: u32) -> Step {
    step(
        at,
        Input::TimerFired(TimerKind::Backoff),
        vec![
            publish_n(
                restarts,
                S::Restarting,
                S::Starting,
                Reason::RestartAttempt { attempt },
            ),
            Action::Spawn,
        ],
    )
}

/// `stop()` of a running host: the shutdown message, and its grace.
fn stop_running(at: u64, waiter: u64, reason: Reason) -> Step {
    step(at, Input::Stop(w(waiter)), stopping_running(reason))
}

fn stopping_running(reason: Reason) -> Vec<Action> {
    vec![
        Action::StopWatchdog,
        publish(S::Running, S::Stopping, reason),
        Action::SendShutdown {
            grace: Duration::from_secs(5),
        },
        arm(TimerKind::ShutdownGrace, 5250),
    ]
}

/// The host deactivated and exited after the shutdown message.
fn graceful_exit(at: u64) -> (Step, Vec<Action>) {
    let actions = vec![
        Action::CancelOperation,
        Action::Disarm(TimerKind::ShutdownGrace),
        Action::Release,
        publish(S::Stopping, S::Stopped, stopped(StopOutcome::Graceful)),
    ];
    (step(at, exit(0), Vec::new()), actions)
}

/// [`graceful_exit`] followed by `then`.
fn graceful_exit_then(at: u64, then: Vec<Action>) -> Step {
    let (mut step, mut actions) = graceful_exit(at);
    actions.extend(then);
    step.expect = actions;
    step
}

#[test]
fn starting_reaches_running() {
    check(vec![
        ("stopped -> starting -> running", start_to_running(0, 1)),
        (
            "a second start while starting waits for the same start, one while running returns at once",
            script(vec![
                vec![
                    step(
                        0,
                        Input::Start(w(1)),
                        vec![
                            publish(S::Stopped, S::Starting, Reason::Requested),
                            Action::Spawn,
                        ],
                    ),
                    step(0, Input::Start(w(2)), Vec::new()),
                ],
                bring_up(0, 0, &[1, 2]),
                vec![step(
                    10,
                    Input::Start(w(3)),
                    vec![answer(3, Answer::Started)],
                )],
            ]),
        ),
    ]);
}
