//! Table tests of [`Machine::step`]: every path of the lifecycle contract (DESIGN §6) and the odd
//! orders around it, as scripts of inputs with exactly the actions each one must produce.
//!
//! Each case starts from a fresh machine with the default options (backoff 1 s, 2 s, 4 s; three
//! restarts per 300 s window; a fresh budget after 60 s up; 5 s shutdown grace, 2 s SIGTERM
//! grace). Besides the actions, the harness checks that the published changes form one chain
//! (each starts where the last ended), so no state is ever skipped.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::lifecycle::state::ExtensionHostState as S;
use crate::permissions::{Glob, Permission, ScopeRoot};
use crate::process::Containment;
use crate::rpc::CloseReason;
use crate::sandbox::view::PathRule;
use crate::sandbox::{Backend, EnforcementReport, SandboxError};
use crate::wire::{ErrorCode, ErrorObject, PROTOCOL_VERSION};

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

fn enforced() -> Box<Enforced> {
    Box::new(Enforced {
        pid: 42,
        containment: Containment::PidNamespace,
        sandbox: EnforcementReport {
            profile: "default".into(),
            backend: Backend::Landlock,
            layers: Vec::new(),
        },
    })
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
            Input::StageReported(enforced()),
            vec![Action::RecordProcess(enforced()), Action::Handshake],
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
            Input::StageReported(enforced()),
            vec![Action::RecordProcess(enforced()), Action::Handshake],
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

#[test]
fn a_running_host_that_fails_is_unhealthy_then_restarted_with_backoff() {
    check(vec![
        (
            "exit: unhealthy, restarting after 1 s, starting",
            script(vec![
                start_to_running(0, 1),
                vec![
                    exit_to_backoff(1000, 1, 0, 1, 1),
                    backoff_elapsed(2000, 1, 1),
                ],
                bring_up(2000, 1, &[]),
            ]),
        ),
        (
            "missed heartbeats: killed, and the decision waits for the process to be gone",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::HeartbeatMissed {
                            silent_for: Duration::from_secs(10),
                        },
                        vec![
                            Action::StopWatchdog,
                            publish(
                                S::Running,
                                S::Unhealthy,
                                Reason::Hung {
                                    silent_for: Duration::from_secs(10),
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        5010,
                        Input::ProcessExited(Exit {
                            signal: Some(9),
                            ..Exit::default()
                        }),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a limit: killed first, unhealthy once gone, with its last output",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::LimitExceeded {
                            limit: Layer::Memory,
                            detail: "600 MiB".into(),
                        },
                        vec![
                            Action::StopWatchdog,
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        5010,
                        Input::ProcessExited(Exit {
                            signal: Some(9),
                            output: vec!["allocating".into()],
                            ..Exit::default()
                        }),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish(
                                S::Running,
                                S::Unhealthy,
                                Reason::LimitExceeded {
                                    limit: Layer::Memory,
                                    detail: "600 MiB".into(),
                                    output: vec!["allocating".into()],
                                },
                            ),
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "an exit the kernel's limit caused says so",
            script(vec![
                start_to_running(0, 1),
                vec![step(
                    5000,
                    Input::ProcessExited(Exit {
                        signal: Some(9),
                        over_limit: Some((Layer::Processes, "refused fork".into())),
                        ..Exit::default()
                    }),
                    vec![
                        Action::StopWatchdog,
                        publish(
                            S::Running,
                            S::Unhealthy,
                            Reason::LimitExceeded {
                                limit: Layer::Processes,
                                detail: "refused fork".into(),
                                output: Vec::new(),
                            },
                        ),
                        Action::Signal(Signal::Kill),
                        Action::Release,
                        publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                        arm(TimerKind::Backoff, 1000),
                    ],
                )],
            ]),
        ),
        (
            "a process SIGKILL cannot end is given up on after the kill wait",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::HeartbeatMissed {
                            silent_for: Duration::from_secs(10),
                        },
                        vec![
                            Action::StopWatchdog,
                            publish(
                                S::Running,
                                S::Unhealthy,
                                Reason::Hung {
                                    silent_for: Duration::from_secs(10),
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        10_000,
                        Input::TimerFired(TimerKind::KillWait),
                        vec![
                            Action::Release,
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a lost connection waits a moment for the exit, which names the cause",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::ConnectionLost {
                            message: "peer closed the connection".into(),
                        },
                        vec![Action::StopWatchdog, arm(TimerKind::ExitAfterClose, 1000)],
                    ),
                    step(
                        5100,
                        exit(7),
                        vec![
                            Action::Disarm(TimerKind::ExitAfterClose),
                            publish(S::Running, S::Unhealthy, exited(7)),
                            Action::Signal(Signal::Kill),
                            Action::Release,
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a lost connection whose process lives on is the reason, and the process is killed",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::ConnectionLost {
                            message: "protocol error".into(),
                        },
                        vec![Action::StopWatchdog, arm(TimerKind::ExitAfterClose, 1000)],
                    ),
                    step(
                        6000,
                        Input::TimerFired(TimerKind::ExitAfterClose),
                        vec![
                            publish(
                                S::Running,
                                S::Unhealthy,
                                Reason::ConnectionLost {
                                    message: "protocol error".into(),
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        6010,
                        exit(0),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
    ]);
}

/// Three restarts inside the window, then Crashed; the budget is fresh after a healthy period
/// and after a start by hand.
#[test]
fn the_restart_budget_backs_off_gives_up_and_resets() {
    let gave_up = || Reason::GaveUp {
        restarts: 3,
        last: Box::new(spawn_io_reason()),
    };
    let crash_loop = || {
        vec![
            step(
                0,
                Input::Start(w(1)),
                vec![
                    publish(S::Stopped, S::Starting, Reason::Requested),
                    Action::Spawn,
                ],
            ),
            step(
                0,
                spawn_io_error(),
                vec![
                    publish(S::Starting, S::Unhealthy, spawn_io_reason()),
                    publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                    arm(TimerKind::Backoff, 1000),
                ],
            ),
            backoff_elapsed(1000, 1, 1),
            step(
                1000,
                spawn_io_error(),
                vec![
                    publish_n(1, S::Starting, S::Unhealthy, spawn_io_reason()),
                    publish_n(2, S::Unhealthy, S::Restarting, backoff(2, 2)),
                    arm(TimerKind::Backoff, 2000),
                ],
            ),
            backoff_elapsed(3000, 2, 2),
            step(
                3000,
                spawn_io_error(),
                vec![
                    publish_n(2, S::Starting, S::Unhealthy, spawn_io_reason()),
                    publish_n(3, S::Unhealthy, S::Restarting, backoff(3, 4)),
                    arm(TimerKind::Backoff, 4000),
                ],
            ),
            backoff_elapsed(7000, 3, 3),
            step(
                7000,
                spawn_io_error(),
                vec![
                    publish_n(3, S::Starting, S::Unhealthy, spawn_io_reason()),
                    publish_n(3, S::Unhealthy, S::Crashed, gave_up()),
                    answer(1, Answer::Crashed(gave_up())),
                ],
            ),
        ]
    };
    check(vec![
        (
            "1 s, 2 s, 4 s, then crashed, and start() is told why",
            crash_loop(),
        ),
        (
            "a start while crashed clears the budget",
            script(vec![
                crash_loop(),
                vec![
                    step(
                        8000,
                        Input::Start(w(2)),
                        vec![
                            publish_n(3, S::Crashed, S::Starting, Reason::Requested),
                            Action::Spawn,
                        ],
                    ),
                    step(
                        8000,
                        spawn_io_error(),
                        vec![
                            publish_n(3, S::Starting, S::Unhealthy, spawn_io_reason()),
                            publish_n(4, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "up 60 s: a fresh budget at the next failure",
            script(vec![
                start_to_running(0, 1),
                vec![
                    exit_to_backoff(1000, 1, 0, 1, 1),
                    backoff_elapsed(2000, 1, 1),
                ],
                bring_up(2000, 1, &[]),
                vec![exit_to_backoff(62_000, 1, 1, 1, 1)],
            ]),
        ),
        (
            "up 59 s: not healthy long enough, the backoff goes on doubling",
            script(vec![
                start_to_running(0, 1),
                vec![
                    exit_to_backoff(1000, 1, 0, 1, 1),
                    backoff_elapsed(2000, 1, 1),
                ],
                bring_up(2000, 1, &[]),
                vec![exit_to_backoff(61_000, 1, 1, 2, 2)],
            ]),
        ),
        (
            "a failure no restart can fix gives up at once",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    Input::SpawnFailed(LaunchError::Spawn(SpawnError::NotFound {
                        program: "node".into(),
                        hint: ": install Node.js".into(),
                    })),
                    vec![
                        publish(
                            S::Starting,
                            S::Unhealthy,
                            Reason::SpawnFailed {
                                message: "`node` was not found: install Node.js".into(),
                            },
                        ),
                        publish(
                            S::Unhealthy,
                            S::Crashed,
                            Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SpawnFailed {
                                    message: "`node` was not found: install Node.js".into(),
                                }),
                            },
                        ),
                        answer(
                            1,
                            Answer::Crashed(Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SpawnFailed {
                                    message: "`node` was not found: install Node.js".into(),
                                }),
                            }),
                        ),
                    ],
                ),
            ],
        ),
    ]);
}

/// `stop()` of a running host: shutdown message, deactivate grace, SIGTERM, SIGKILL.
#[test]
fn a_stop_escalates_from_shutdown_to_sigterm_to_sigkill() {
    check(vec![
        (
            "graceful",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    graceful_exit_then(200, vec![answer(2, Answer::Stopped)]),
                ],
            ]),
        ),
        (
            "deaf to the shutdown message: SIGTERM after the grace",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(
                        5350,
                        Input::TimerFired(TimerKind::ShutdownGrace),
                        vec![
                            Action::CancelOperation,
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                    step(
                        5400,
                        exit(0),
                        vec![
                            Action::Disarm(TimerKind::TermGrace),
                            Action::Release,
                            publish(S::Stopping, S::Stopped, stopped(StopOutcome::Terminated)),
                            answer(2, Answer::Stopped),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "deaf to SIGTERM: SIGKILL after its grace",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(
                        5350,
                        Input::TimerFired(TimerKind::ShutdownGrace),
                        vec![
                            Action::CancelOperation,
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                    step(
                        7350,
                        Input::TimerFired(TimerKind::TermGrace),
                        vec![Action::Signal(Signal::Kill), arm(TimerKind::KillWait, 5000)],
                    ),
                    step(
                        7360,
                        Input::ProcessExited(Exit {
                            signal: Some(9),
                            ..Exit::default()
                        }),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish(S::Stopping, S::Stopped, stopped(StopOutcome::Killed)),
                            answer(2, Answer::Stopped),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "not even SIGKILL: stopped all the same once the kill wait is over",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(
                        5350,
                        Input::TimerFired(TimerKind::ShutdownGrace),
                        vec![
                            Action::CancelOperation,
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                    step(
                        7350,
                        Input::TimerFired(TimerKind::TermGrace),
                        vec![Action::Signal(Signal::Kill), arm(TimerKind::KillWait, 5000)],
                    ),
                    step(
                        12_350,
                        Input::TimerFired(TimerKind::KillWait),
                        vec![
                            Action::Release,
                            publish(S::Stopping, S::Stopped, stopped(StopOutcome::Killed)),
                            answer(2, Answer::Stopped),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a shutdown message that cannot be sent goes straight to SIGTERM",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(
                        110,
                        Input::ShutdownFailed,
                        vec![
                            Action::Disarm(TimerKind::ShutdownGrace),
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a second stop joins the first",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(150, Input::Stop(w(3)), Vec::new()),
                    graceful_exit_then(
                        200,
                        vec![answer(2, Answer::Stopped), answer(3, Answer::Stopped)],
                    ),
                ],
            ]),
        ),
    ]);
}

/// `stop()` from every other state, each to Stopped by the shortest way.
#[test]
fn a_stop_from_any_state_ends_stopped() {
    let to_backoff = || {
        vec![
            step(
                0,
                Input::Start(w(1)),
                vec![
                    publish(S::Stopped, S::Starting, Reason::Requested),
                    Action::Spawn,
                ],
            ),
            step(
                0,
                spawn_io_error(),
                vec![
                    publish(S::Starting, S::Unhealthy, spawn_io_reason()),
                    publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                    arm(TimerKind::Backoff, 1000),
                ],
            ),
        ]
    };
    let terminated = |at: u64, answers: Vec<Action>| {
        let mut actions = vec![
            Action::Disarm(TimerKind::TermGrace),
            Action::Release,
            publish(S::Stopping, S::Stopped, stopped(StopOutcome::Terminated)),
        ];
        actions.extend(answers);
        step(at, exit(0), actions)
    };
    let not_running = || stopped(StopOutcome::NotRunning);
    check(vec![
        (
            "stopped: answered at once",
            vec![step(0, Input::Stop(w(1)), vec![answer(1, Answer::Stopped)])],
        ),
        (
            "restarting: the backoff is interrupted at once, and the start is told",
            script(vec![
                to_backoff(),
                vec![step(
                    10,
                    Input::Stop(w(2)),
                    vec![
                        Action::Disarm(TimerKind::Backoff),
                        publish_n(1, S::Restarting, S::Stopping, Reason::Requested),
                        publish_n(1, S::Stopping, S::Stopped, not_running()),
                        answer(1, Answer::StoppedFirst),
                        answer(2, Answer::Stopped),
                    ],
                )],
            ]),
        ),
        (
            "crashed",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    Input::SpawnFailed(LaunchError::Sandbox(SandboxError::Setup("no".into()))),
                    vec![
                        publish(
                            S::Starting,
                            S::Unhealthy,
                            Reason::SandboxUnavailable {
                                message: "sandbox setup failed: no".into(),
                            },
                        ),
                        publish(
                            S::Unhealthy,
                            S::Crashed,
                            Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SandboxUnavailable {
                                    message: "sandbox setup failed: no".into(),
                                }),
                            },
                        ),
                        answer(
                            1,
                            Answer::Crashed(Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SandboxUnavailable {
                                    message: "sandbox setup failed: no".into(),
                                }),
                            }),
                        ),
                    ],
                ),
                step(
                    10,
                    Input::Stop(w(2)),
                    vec![
                        publish(S::Crashed, S::Stopping, Reason::Requested),
                        publish(S::Stopping, S::Stopped, not_running()),
                        answer(2, Answer::Stopped),
                    ],
                ),
            ],
        ),
        (
            "during the spawn: it finishes, then SIGTERM",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    Input::Stop(w(2)),
                    vec![publish(S::Starting, S::Stopping, Reason::Requested)],
                ),
                step(
                    10,
                    Input::Spawned,
                    vec![
                        Action::Signal(Signal::Terminate),
                        arm(TimerKind::TermGrace, 2000),
                    ],
                ),
                terminated(
                    20,
                    vec![answer(1, Answer::StoppedFirst), answer(2, Answer::Stopped)],
                ),
            ],
        ),
        (
            "during a spawn that fails: nothing to end",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    Input::Stop(w(2)),
                    vec![publish(S::Starting, S::Stopping, Reason::Requested)],
                ),
                step(
                    10,
                    spawn_io_error(),
                    vec![
                        publish(S::Stopping, S::Stopped, not_running()),
                        answer(1, Answer::StoppedFirst),
                        answer(2, Answer::Stopped),
                    ],
                ),
            ],
        ),
        (
            "during the stage report: it finishes, then SIGTERM",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(0, Input::Spawned, vec![Action::ReadStageReport]),
                step(
                    0,
                    Input::Stop(w(2)),
                    vec![publish(S::Starting, S::Stopping, Reason::Requested)],
                ),
                step(
                    10,
                    Input::StageReported(enforced()),
                    vec![
                        Action::RecordProcess(enforced()),
                        Action::Signal(Signal::Terminate),
                        arm(TimerKind::TermGrace, 2000),
                    ],
                ),
                terminated(
                    20,
                    vec![answer(1, Answer::StoppedFirst), answer(2, Answer::Stopped)],
                ),
            ],
        ),
        (
            "during the handshake: abandoned, SIGTERM (no connection for a shutdown message)",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(
                        10,
                        Input::Stop(w(2)),
                        vec![
                            Action::CancelOperation,
                            publish(S::Starting, S::Stopping, Reason::Requested),
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                    terminated(
                        20,
                        vec![answer(1, Answer::StoppedFirst), answer(2, Answer::Stopped)],
                    ),
                ],
            ]),
        ),
        (
            "during activation: abandoned, and the shutdown message",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(0, Input::HandshakeDone, vec![Action::JoinCgroup]),
                    step(0, Input::CgroupJoined, vec![Action::Activate]),
                    step(
                        10,
                        Input::Stop(w(2)),
                        vec![
                            Action::CancelOperation,
                            publish(S::Starting, S::Stopping, Reason::Requested),
                            Action::SendShutdown {
                                grace: Duration::from_secs(5),
                            },
                            arm(TimerKind::ShutdownGrace, 5250),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "unhealthy: the kill under way ends it",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        5000,
                        Input::HeartbeatMissed {
                            silent_for: Duration::from_secs(10),
                        },
                        vec![
                            Action::StopWatchdog,
                            publish(
                                S::Running,
                                S::Unhealthy,
                                Reason::Hung {
                                    silent_for: Duration::from_secs(10),
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        5001,
                        Input::Stop(w(2)),
                        vec![publish(S::Unhealthy, S::Stopping, Reason::Requested)],
                    ),
                    step(
                        5010,
                        exit(0),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish(S::Stopping, S::Stopped, not_running()),
                            answer(2, Answer::Stopped),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a start during a stop starts again after it",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(150, Input::Start(w(3)), Vec::new()),
                    graceful_exit_then(
                        200,
                        vec![
                            answer(2, Answer::Stopped),
                            publish(S::Stopped, S::Starting, Reason::Requested),
                            Action::Spawn,
                        ],
                    ),
                ],
                bring_up(200, 0, &[3]),
            ]),
        ),
        (
            "a stop behind that start wins",
            script(vec![
                start_to_running(0, 1),
                vec![
                    stop_running(100, 2, Reason::Requested),
                    step(150, Input::Start(w(3)), Vec::new()),
                    step(160, Input::Stop(w(4)), Vec::new()),
                    graceful_exit_then(
                        200,
                        vec![
                            answer(3, Answer::StoppedFirst),
                            answer(2, Answer::Stopped),
                            answer(4, Answer::Stopped),
                        ],
                    ),
                ],
            ]),
        ),
    ]);
}

/// New grants for the sandbox's view: a live host is stopped and started again with them, as a
/// fresh start and not a failure; nothing else is started.
#[test]
fn a_new_view_restarts_a_live_host_and_nothing_else() {
    let relaunched = |at: u64, glob: &str, restarts: u32| {
        graceful_exit_then(
            at,
            vec![
                publish_n(restarts, S::Stopped, S::Starting, view_changed(glob)),
                Action::Spawn,
            ],
        )
    };
    let view_stop = |at: u64, glob: &str, reply: u64, restarted: u64| {
        let mut actions = vec![
            Action::UseView(grants(glob)),
            answer(reply, Answer::View(ViewChange::Restarting)),
        ];
        actions.extend(stopping_running(view_changed(glob)));
        step(at, set_view(glob, reply, restarted), actions)
    };
    check(vec![
        (
            "running: stopping, stopped, starting with reason viewChanged, running",
            script(vec![
                start_to_running(0, 1),
                vec![view_stop(100, "src/**", 2, 3), relaunched(200, "src/**", 0)],
                bring_up(200, 0, &[3]),
            ]),
        ),
        (
            "the restart is not charged to the budget: a failure after it is restart 1",
            script(vec![
                start_to_running(0, 1),
                vec![
                    exit_to_backoff(1000, 1, 0, 1, 1),
                    backoff_elapsed(2000, 1, 1),
                ],
                bring_up(2000, 1, &[]),
                vec![
                    exit_to_backoff(3000, 1, 1, 2, 2),
                    backoff_elapsed(5000, 2, 2),
                ],
                bring_up(5000, 2, &[]),
                vec![
                    step(
                        6000,
                        set_view("src/**", 2, 3),
                        vec![
                            Action::UseView(grants("src/**")),
                            answer(2, Answer::View(ViewChange::Restarting)),
                            Action::StopWatchdog,
                            publish_n(2, S::Running, S::Stopping, view_changed("src/**")),
                            Action::SendShutdown {
                                grace: Duration::from_secs(5),
                            },
                            arm(TimerKind::ShutdownGrace, 5250),
                        ],
                    ),
                    step(
                        6100,
                        exit(0),
                        vec![
                            Action::CancelOperation,
                            Action::Disarm(TimerKind::ShutdownGrace),
                            Action::Release,
                            publish_n(2, S::Stopping, S::Stopped, stopped(StopOutcome::Graceful)),
                            publish_n(2, S::Stopped, S::Starting, view_changed("src/**")),
                            Action::Spawn,
                        ],
                    ),
                ],
                bring_up(6100, 2, &[3]),
                vec![exit_to_backoff(7000, 1, 2, 1, 1)],
            ]),
        ),
        (
            "stopped: the view is for the next start, and nothing starts",
            vec![
                step(
                    0,
                    set_view("src/**", 1, 2),
                    vec![
                        Action::UseView(grants("src/**")),
                        answer(1, Answer::View(ViewChange::Updated)),
                        Action::Forget(w(2)),
                    ],
                ),
                step(
                    10,
                    set_view("src/**", 3, 4),
                    vec![
                        answer(3, Answer::View(ViewChange::Unchanged)),
                        Action::Forget(w(4)),
                    ],
                ),
            ],
        ),
        (
            "restarting: the next start picks it up, and the backoff goes on",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    spawn_io_error(),
                    vec![
                        publish(S::Starting, S::Unhealthy, spawn_io_reason()),
                        publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                        arm(TimerKind::Backoff, 1000),
                    ],
                ),
                step(
                    10,
                    set_view("src/**", 2, 3),
                    vec![
                        Action::UseView(grants("src/**")),
                        answer(2, Answer::View(ViewChange::Updated)),
                        Action::Forget(w(3)),
                    ],
                ),
                backoff_elapsed(1000, 1, 1),
            ],
        ),
        (
            "a stop queued during the restart wins: stopped, and the restart's waiter is told",
            script(vec![
                start_to_running(0, 1),
                vec![
                    view_stop(100, "src/**", 2, 3),
                    step(150, Input::Stop(w(4)), Vec::new()),
                    graceful_exit_then(
                        200,
                        vec![answer(3, Answer::StoppedFirst), answer(4, Answer::Stopped)],
                    ),
                ],
            ]),
        ),
        (
            "a newer view during the restart joins it",
            script(vec![
                start_to_running(0, 1),
                vec![
                    view_stop(100, "src/**", 2, 3),
                    step(
                        150,
                        set_view("docs/**", 4, 5),
                        vec![
                            Action::UseView(grants("docs/**")),
                            answer(4, Answer::View(ViewChange::Restarting)),
                        ],
                    ),
                    relaunched(200, "docs/**", 0),
                ],
                bring_up(200, 0, &[3, 5]),
            ]),
        ),
        (
            "starting: the start in progress is abandoned, its caller gets the new host",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(
                        10,
                        set_view("src/**", 2, 3),
                        vec![
                            Action::UseView(grants("src/**")),
                            answer(2, Answer::View(ViewChange::Restarting)),
                            Action::CancelOperation,
                            publish(S::Starting, S::Stopping, view_changed("src/**")),
                            Action::Signal(Signal::Terminate),
                            arm(TimerKind::TermGrace, 2000),
                        ],
                    ),
                    step(
                        20,
                        exit(0),
                        vec![
                            Action::Disarm(TimerKind::TermGrace),
                            Action::Release,
                            publish(S::Stopping, S::Stopped, stopped(StopOutcome::Terminated)),
                            publish(S::Stopped, S::Starting, view_changed("src/**")),
                            Action::Spawn,
                        ],
                    ),
                ],
                bring_up(20, 0, &[1, 3]),
            ]),
        ),
    ]);
}

/// The last handle going is a stop that ends the actor.
#[test]
fn a_dropped_handle_ends_everything() {
    check(vec![
        (
            "stopped: at once",
            vec![step(0, Input::HandleDropped, vec![Action::Exit])],
        ),
        (
            "running: stopped first",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(
                        100,
                        Input::HandleDropped,
                        stopping_running(Reason::Requested),
                    ),
                    graceful_exit_then(200, vec![Action::Exit]),
                ],
            ]),
        ),
        (
            "restarting: the backoff ends at once",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(
                    0,
                    spawn_io_error(),
                    vec![
                        publish(S::Starting, S::Unhealthy, spawn_io_reason()),
                        publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                        arm(TimerKind::Backoff, 1000),
                    ],
                ),
                step(
                    10,
                    Input::HandleDropped,
                    vec![
                        Action::Disarm(TimerKind::Backoff),
                        publish_n(1, S::Restarting, S::Stopping, Reason::Requested),
                        publish_n(1, S::Stopping, S::Stopped, stopped(StopOutcome::NotRunning)),
                        answer(1, Answer::StoppedFirst),
                        Action::Exit,
                    ],
                ),
            ],
        ),
        (
            "during a view restart: it wins over the restart",
            script(vec![
                start_to_running(0, 1),
                vec![
                    step(100, set_view("src/**", 2, 3), {
                        let mut actions = vec![
                            Action::UseView(grants("src/**")),
                            answer(2, Answer::View(ViewChange::Restarting)),
                        ];
                        actions.extend(stopping_running(view_changed("src/**")));
                        actions
                    }),
                    step(150, Input::HandleDropped, Vec::new()),
                    graceful_exit_then(200, vec![answer(3, Answer::StoppedFirst), Action::Exit]),
                ],
            ]),
        ),
    ]);
}

/// Orders that should not happen often, and late outcomes of what was already abandoned.
#[test]
fn odd_orders() {
    check(vec![
        (
            "an exit during the handshake is a failed start, retried",
            script(vec![
                start_to_handshake(1),
                vec![step(
                    10,
                    exit(1),
                    vec![
                        Action::CancelOperation,
                        publish(S::Starting, S::Unhealthy, exited(1)),
                        Action::Signal(Signal::Kill),
                        Action::Release,
                        publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                        arm(TimerKind::Backoff, 1000),
                    ],
                )],
            ]),
        ),
        (
            "a protocol version no restart can change gives up",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(
                        10,
                        Input::HandshakeFailed(HandshakeError::Version { host: 99 }),
                        vec![
                            publish(
                                S::Starting,
                                S::Unhealthy,
                                Reason::HandshakeFailed {
                                    message: format!(
                                        "host speaks protocol version 99, the supervisor speaks {PROTOCOL_VERSION}"
                                    ),
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                    step(
                        20,
                        exit(0),
                        vec![
                            Action::Disarm(TimerKind::KillWait),
                            Action::Release,
                            publish(
                                S::Unhealthy,
                                S::Crashed,
                                Reason::GaveUp {
                                    restarts: 0,
                                    last: Box::new(Reason::HandshakeFailed {
                                        message: format!(
                                            "host speaks protocol version 99, the supervisor speaks {PROTOCOL_VERSION}"
                                        ),
                                    }),
                                },
                            ),
                            answer(
                                1,
                                Answer::Crashed(Reason::GaveUp {
                                    restarts: 0,
                                    last: Box::new(Reason::HandshakeFailed {
                                        message: format!(
                                            "host speaks protocol version 99, the supervisor speaks {PROTOCOL_VERSION}"
                                        ),
                                    }),
                                }),
                            ),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a handshake timeout is retried",
            script(vec![
                start_to_handshake(1),
                vec![step(
                    10_000,
                    Input::HandshakeFailed(HandshakeError::Timeout {
                        after: Duration::from_secs(10),
                    }),
                    vec![
                        publish(
                            S::Starting,
                            S::Unhealthy,
                            Reason::HandshakeFailed {
                                message: "no handshake within 10000 ms".into(),
                            },
                        ),
                        Action::Signal(Signal::Kill),
                        arm(TimerKind::KillWait, 5000),
                    ],
                )],
            ]),
        ),
        (
            "an activation that threw is reported with its output",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(0, Input::HandshakeDone, vec![Action::JoinCgroup]),
                    step(0, Input::CgroupJoined, vec![Action::Activate]),
                    step(
                        10,
                        Input::ActivationFailed {
                            error: ActivationError::Request(RequestError::Remote(
                                ErrorObject::new(ErrorCode::ExtensionError, "boom"),
                            )),
                            output: vec!["stack".into()],
                        },
                        vec![
                            publish(
                                S::Starting,
                                S::Unhealthy,
                                Reason::ActivationFailed {
                                    message: "ExtensionError: boom".into(),
                                    output: vec!["stack".into()],
                                },
                            ),
                            Action::Signal(Signal::Kill),
                            arm(TimerKind::KillWait, 5000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "an activation cut by a closed connection waits for the exit status",
            script(vec![
                start_to_handshake(1),
                vec![
                    step(0, Input::HandshakeDone, vec![Action::JoinCgroup]),
                    step(0, Input::CgroupJoined, vec![Action::Activate]),
                    step(
                        10,
                        Input::ActivationFailed {
                            error: ActivationError::Request(RequestError::Closed {
                                reason: CloseReason::Eof,
                            }),
                            output: Vec::new(),
                        },
                        vec![arm(TimerKind::ExitAfterClose, 1000)],
                    ),
                    step(
                        20,
                        exit(3),
                        vec![
                            Action::Disarm(TimerKind::ExitAfterClose),
                            publish(S::Starting, S::Unhealthy, exited(3)),
                            Action::Signal(Signal::Kill),
                            Action::Release,
                            publish_n(1, S::Unhealthy, S::Restarting, backoff(1, 1)),
                            arm(TimerKind::Backoff, 1000),
                        ],
                    ),
                ],
            ]),
        ),
        (
            "a refused sandbox is not retried",
            vec![
                step(
                    0,
                    Input::Start(w(1)),
                    vec![
                        publish(S::Stopped, S::Starting, Reason::Requested),
                        Action::Spawn,
                    ],
                ),
                step(0, Input::Spawned, vec![Action::ReadStageReport]),
                step(
                    10,
                    Input::StageRefused(StageError {
                        cause: super::super::launch::StageFailure::NoReport("silent".into()),
                        last_output: Some("bwrap: no".into()),
                    }),
                    vec![
                        publish(
                            S::Starting,
                            S::Unhealthy,
                            Reason::SandboxUnavailable {
                                message: "silent (stage output: bwrap: no)".into(),
                            },
                        ),
                        Action::Signal(Signal::Kill),
                        arm(TimerKind::KillWait, 5000),
                    ],
                ),
            ],
        ),
        (
            "late timers and outcomes change nothing",
            vec![
                step(0, Input::TimerFired(TimerKind::Backoff), Vec::new()),
                step(0, Input::HandshakeDone, Vec::new()),
                step(0, exit(0), Vec::new()),
                step(
                    0,
                    Input::HeartbeatMissed {
                        silent_for: Duration::from_secs(1),
                    },
                    Vec::new(),
                ),
                step(0, Input::ShutdownFailed, Vec::new()),
            ],
        ),
    ]);
}
