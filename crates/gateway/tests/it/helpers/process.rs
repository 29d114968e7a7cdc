//! Helpers for tests that run the real `whatsapp-gateway` binary as child processes.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// The binary under test, built by cargo for integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-gateway");

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The URL a `whatsapp-gateway emulator` child prints on its first stdout line.
pub fn emulator_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line).unwrap();
    line.split_whitespace().find(|w| w.starts_with("http://")).expect("the emulator prints its URL").to_owned()
}
