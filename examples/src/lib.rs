//! Runnable programs showing `sockets`; each binary opens with the command that runs it.

pub mod load;
