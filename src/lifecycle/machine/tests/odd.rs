//! Orders that should not happen often, and failures of a start.

use super::*;

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
                        cause: crate::lifecycle::launch::StageFailure::NoReport("silent".into()),
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
