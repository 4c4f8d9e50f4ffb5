//! Circles (groups): the `kith group` commands run against a home, their answers parsed, and
//! many homes registered at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::home::{Home, json_lines};
use super::process::Run;
use super::relay::RelayProcess;

/// What `kith group send` reported: `Sent to circle "NAME" (N devices, one upload of B
/// bytes).`, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSent {
    /// Member devices the message went to.
    pub devices: u64,
    /// Length of the one shared body uploaded.
    pub body_bytes: u64,
    /// Wall-clock time of the whole command.
    pub elapsed: Duration,
}

impl Home {
    /// Runs `kith group ARGS` to completion.
    #[track_caller]
    pub fn group(&self, args: &[&str]) -> Run {
        self.kith(["group"].iter().chain(args))
    }

    /// `kith group create NAME MEMBERS...`; asserts success.
    #[track_caller]
    pub fn group_create(&self, name: &str, members: &[&str]) -> Run {
        let mut args = vec!["create", name];
        args.extend_from_slice(members);
        self.group(&args).success()
    }

    /// `kith group send NAME TEXT`; asserts success and parses the report.
    #[track_caller]
    pub fn group_send(&self, name: &str, text: &str) -> GroupSent {
        let started = Instant::now();
        let out = self.group(&["send", name, text]).success();
        let elapsed = started.elapsed();
        let (devices, body_bytes) = parse_group_sent(&out.stdout, name)
            .unwrap_or_else(|| panic!("no `Sent to circle \"{name}\" (…)` report: {out:?}"));
        GroupSent {
            devices,
            body_bytes,
            elapsed,
        }
    }

    /// `kith group members NAME --json`: one object (handle, admin, you) per member.
    #[track_caller]
    pub fn group_members_json(&self, name: &str) -> Vec<Value> {
        json_lines(&self.group(&["members", name, "--json"]).success())
    }

    /// `kith group list --json`: one object (id, name, epoch, members, admin,
    /// last_message_at) per circle.
    #[track_caller]
    pub fn group_list_json(&self) -> Vec<Value> {
        json_lines(&self.group(&["list", "--json"]).success())
    }

    /// `kith history --group NAME --json`.
    #[track_caller]
    pub fn group_history_json(&self, name: &str) -> Vec<Value> {
        json_lines(&self.kith(["history", "--group", name, "--json"]).success())
    }
}

/// `(N, B)` from `Sent to circle "NAME" (N devices, one upload of B bytes).`
fn parse_group_sent(stdout: &str, name: &str) -> Option<(u64, u64)> {
    let start = format!("Sent to circle \"{name}\" (");
    let line = stdout.lines().find_map(|l| l.trim().strip_prefix(&start))?;
    let (devices, rest) = line.split_once(' ')?;
    let rest = rest
        .strip_prefix("devices, ")
        .or(rest.strip_prefix("device, "))?;
    let bytes = rest.strip_prefix("one upload of ")?.split_once(' ')?.0;
    Some((devices.parse().ok()?, bytes.parse().ok()?))
}

/// Registers a home for each of `handles` on `relay` (`kith init`), `parallel` at a time;
/// the homes come back in the order of `handles`.
#[track_caller]
pub fn init_homes(relay: &RelayProcess, handles: &[String], parallel: usize) -> Vec<Home> {
    let next = AtomicUsize::new(0);
    let homes: Mutex<Vec<Option<Home>>> = Mutex::new(handles.iter().map(|_| None).collect());
    thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(handle) = handles.get(index) else {
                        return;
                    };
                    let home = Home::new(handle);
                    home.init(relay);
                    homes.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(home);
                }
            });
        }
    });
    let homes = homes.into_inner().unwrap_or_else(|e| e.into_inner());
    homes
        .into_iter()
        .map(|home| home.expect("every home initialised (a worker failed)"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_group_sent;

    #[test]
    fn reads_the_send_report() {
        let out = "Sent to circle \"circle\" (49 devices, one upload of 1234 bytes).\n";
        assert_eq!(parse_group_sent(out, "circle"), Some((49, 1234)));
        let one = "Sent to circle \"c2\" (1 device, one upload of 90 bytes).";
        assert_eq!(parse_group_sent(one, "c2"), Some((1, 90)));
        assert_eq!(parse_group_sent(out, "other"), None);
    }
}
