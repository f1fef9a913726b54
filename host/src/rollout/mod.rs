//! Rollouts: a change walked through its plan's checkpoints (promote,
//! observe, experiments, validators, gate), paused for approvals, rolled
//! back and verified on failure, frozen at an irreversible step, every step
//! recorded in a hash-chained journal from which the rollout's state is
//! rebuilt.

pub mod engine;
pub mod hooks;
pub mod journal;
pub mod pg;
pub mod plan;
pub mod state;
pub mod status;
