//! New sandbox views, and the last handle going.

use super::*;

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
