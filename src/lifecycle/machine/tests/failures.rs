//! Failures of a running host, and the restart budget that answers them.

use super::*;

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
