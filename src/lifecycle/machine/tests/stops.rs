//! `stop()`: the escalation from the shutdown message to SIGKILL, and a stop from every state.

use super::*;

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
                    Input::SpawnFailed(LaunchError::Sandbox(SandboxError::StageFailed(
                        "no".into(),
                    ))),
                    vec![
                        publish(
                            S::Starting,
                            S::Unhealthy,
                            Reason::SandboxUnavailable {
                                message: "the sandbox stage failed: no".into(),
                            },
                        ),
                        publish(
                            S::Unhealthy,
                            S::Crashed,
                            Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SandboxUnavailable {
                                    message: "the sandbox stage failed: no".into(),
                                }),
                            },
                        ),
                        answer(
                            1,
                            Answer::Crashed(Reason::GaveUp {
                                restarts: 0,
                                last: Box::new(Reason::SandboxUnavailable {
                                    message: "the sandbox stage failed: no".into(),
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
                    Input::StageReported(Box::new(enforced())),
                    vec![
                        Action::RecordProcess(Box::new(enforced())),
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
