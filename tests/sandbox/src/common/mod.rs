//! Protocol-independent pieces shared by every simulated API.

pub mod clock;
pub mod control;
pub mod faults;
pub mod latency;
pub mod prng;
pub mod ratelimit;
pub mod recorder;
pub mod server;
pub mod sync;
pub mod webhook;

pub use clock::SandboxClock;
pub use control::Services;
