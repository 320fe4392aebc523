//! The running node's shared state: the context ([`ctx::Ctx`]) and the in-memory tables it
//! holds. Data and the methods that keep its invariants live here; protocol behaviour lives in
//! the subsystems above, which all take the context.

pub mod budgets;
pub mod checkpoints;
pub mod ctx;
pub mod peers;
pub mod verified;
pub mod wakers;
pub mod witness;
