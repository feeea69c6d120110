//! What a stop, a new view or the last handle going does at each point of the lifecycle, and
//! the escalation that ends a process: the shutdown message, SIGTERM, SIGKILL.

use super::messages::{Action, Answer, Signal, TimerKind, WaiterId};
use super::{AfterStop, KILL_WAIT, Machine, Op, Phase, SHUTDOWN_SLACK, StopStep};
use crate::lifecycle::state::{ExtensionHostState, Reason, StopOutcome, Trigger};
use crate::lifecycle::status::ViewChange;
use crate::sandbox::view::FsGrants;

impl Machine {
    /// A stop (`then` is [`AfterStop::Idle`]) or the last handle going ([`AfterStop::Exit`]).
    pub(super) fn on_stop(&mut self, then: AfterStop) {
        match &mut self.phase {
            Phase::Idle => {
                if self.state == ExtensionHostState::Crashed {
                    self.publish(Trigger::Stop, Reason::Requested);
                    self.publish(
                        Trigger::Exited,
                        Reason::Stopped {
                            how: StopOutcome::NotRunning,
                        },
                    );
                }
                self.finish_stop(then);
            }
            Phase::Stopping { then: pending, .. } => {
                // A stop wins over a start or a new view queued before it; the end wins over all.
                if *pending != AfterStop::Exit {
                    *pending = then;
                }
                let queued = std::mem::take(&mut self.queued_starts);
                self.start_waiters.extend(queued);
            }
            _ => self.begin_stop(Reason::Requested, then),
        }
    }

    pub(super) fn on_view(&mut self, grants: FsGrants, reply: WaiterId, restarted: WaiterId) {
        if grants == self.grants {
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Unchanged)));
            self.out.push(Action::Forget(restarted));
            return;
        }
        self.grants = grants.clone();
        self.out.push(Action::UseView(grants));
        let relaunching = matches!(
            self.phase,
            Phase::Stopping {
                then: AfterStop::Relaunch,
                ..
            }
        );
        // A process started with the old view still has it: only a new one gets the new. In
        // backoff or while failing (a limit kill is announced late, from Running), the next
        // spawn picks the new view up anyway.
        let live = !matches!(self.phase, Phase::Stopping { .. } | Phase::Killing { .. })
            && matches!(
                self.state,
                ExtensionHostState::Starting | ExtensionHostState::Running
            );
        if relaunching || live {
            // Resolved like a start: Running, given up, or superseded by a stop.
            self.start_waiters.push(restarted);
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Restarting)));
            if live {
                let reason = self.view_changed();
                self.begin_stop(reason, AfterStop::Relaunch);
            }
        } else {
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Updated)));
            self.out.push(Action::Forget(restarted));
        }
    }

    pub(super) fn on_shutdown_failed(&mut self) {
        if self.op != Some(Op::Shutdown) {
            return self.unexpected("ShutdownFailed");
        }
        self.op = None;
        if let Phase::Stopping {
            step: StopStep::Shutdown,
            ..
        } = self.phase
        {
            self.disarm(TimerKind::ShutdownGrace);
            self.terminate();
        }
    }

    /// Stopping for `reason`: whatever the host was doing, the way out begins here.
    pub(super) fn begin_stop(&mut self, reason: Reason, then: AfterStop) {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        match phase {
            Phase::Idle | Phase::Stopping { .. } => {
                unreachable!("handled by the callers")
            }
            Phase::Backoff { .. } => {
                // No process: the backoff ends at once.
                self.disarm(TimerKind::Backoff);
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Failing,
                    then,
                };
                self.stopped(StopOutcome::NotRunning);
            }
            Phase::Killing { .. } => {
                // Already dying; the kill in progress ends it.
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Failing,
                    then,
                };
            }
            Phase::Spawning | Phase::Staging => {
                // Neither can be abandoned halfway (a process may be on its way): the stop
                // goes on once it is back.
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Launching,
                    then,
                };
            }
            Phase::Handshaking | Phase::JoiningCgroup | Phase::Lost { .. } => {
                // No connection to send a shutdown message on.
                self.cancel_op();
                self.disarm(TimerKind::ExitAfterClose);
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Terminate,
                    then,
                };
                self.terminate();
            }
            Phase::Activating | Phase::Running { .. } => {
                self.cancel_op();
                self.stop_watchdog();
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Shutdown,
                    then,
                };
                self.begin(
                    Op::Shutdown,
                    Action::SendShutdown {
                        grace: self.shutdown_grace,
                    },
                );
                self.arm(
                    TimerKind::ShutdownGrace,
                    self.shutdown_grace + SHUTDOWN_SLACK,
                );
            }
        }
    }

    /// SIGTERM, then the grace before SIGKILL.
    pub(super) fn terminate(&mut self) {
        if let Phase::Stopping { step, .. } = &mut self.phase {
            *step = StopStep::Terminate;
        }
        self.out.push(Action::Signal(Signal::Terminate));
        self.arm(TimerKind::TermGrace, self.term_grace);
    }

    pub(super) fn kill_for_stop(&mut self) {
        if let Phase::Stopping { step, .. } = &mut self.phase {
            *step = StopStep::Kill;
        }
        self.out.push(Action::Signal(Signal::Kill));
        self.arm(TimerKind::KillWait, KILL_WAIT);
    }

    /// The process is gone after a stop: Stopped, then what was queued behind it.
    pub(super) fn stopped(&mut self, how: StopOutcome) {
        let Phase::Stopping { then, .. } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("only a stop ends in Stopped");
        };
        self.release();
        self.publish(Trigger::Exited, Reason::Stopped { how });
        if then == AfterStop::Relaunch {
            // Not a failure: a fresh start, as `start()` would make it. Those waiting for a
            // start keep waiting for this one.
            self.budget.reset();
            let reason = self.view_changed();
            self.publish(Trigger::Start, reason);
            self.begin_launch();
        } else {
            self.finish_stop(then);
        }
    }

    /// Answers everyone the stop concerns, then starts again or ends, as queued.
    pub(super) fn finish_stop(&mut self, then: AfterStop) {
        self.answer_starts(&Answer::StoppedFirst);
        for waiter in std::mem::take(&mut self.stop_waiters) {
            self.out.push(Action::Answer(waiter, Answer::Stopped));
        }
        match then {
            AfterStop::Start => {
                self.start_waiters = std::mem::take(&mut self.queued_starts);
                self.budget.reset();
                self.publish(Trigger::Start, Reason::Requested);
                self.begin_launch();
            }
            AfterStop::Exit => self.out.push(Action::Exit),
            AfterStop::Idle | AfterStop::Relaunch => {}
        }
    }

    pub(super) fn view_changed(&self) -> Reason {
        Reason::ViewChanged {
            grants: self.grants.describe(),
        }
    }
}
