//! Integration tests: the emulator on 127.0.0.1:0 against a real callback receiver.

mod api;
mod faults;
mod helpers;
mod inbound;
mod lifecycle;
