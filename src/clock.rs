//! Time as a parameter (the `keyhaven-clock` crate, shared with the sandbox).

pub use keyhaven_clock::Clock;
