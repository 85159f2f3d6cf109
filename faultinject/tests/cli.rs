//! `coral-fault` end to end on real processes (no namespace needed): the
//! signal faults hit the process, each is appended to events.csv, and a
//! fault that did nothing exits non-zero.

use std::process::Command;

fn coral_fault(events: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coral-fault"))
        .arg("--events")
        .arg(events)
        .args(["--host", "victim"])
        .args(args)
        .output()
        .unwrap()
}

fn state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let i = s.rfind(')').unwrap();
    s[i + 1..].trim_start().chars().next().unwrap()
}

#[test]
fn stop_cont_kill_a_real_process_and_record_them() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events.csv");
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id().to_string();

    assert!(coral_fault(&ev, &["stop", &pid]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state(child.id()) != 'T' && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(state(child.id()), 'T', "not stopped");
    assert!(coral_fault(&ev, &["cont", &pid]).status.success());
    assert!(coral_fault(&ev, &["kill", &pid]).status.success());
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9));

    // Nothing left to kill: non-zero, and nothing recorded.
    let o = coral_fault(&ev, &["kill", &pid]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no live process"));

    let rows = faultinject::read_events(&ev).unwrap();
    let names: Vec<&str> = rows.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, vec!["stop", "cont", "kill"]);
    assert!(rows
        .iter()
        .all(|e| e.host == "victim" && e.source == "coral-fault"));
    assert!(rows.windows(2).all(|w| w[0].t_unix_ns <= w[1].t_unix_ns));
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events.csv");
    let o = coral_fault(
        &ev,
        &["link-cut", "--netns", "cx-no-such-zz", "--dev", "eth0"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    let o = coral_fault(
        &ev,
        &[
            "partition",
            "--netns",
            "x",
            "--label",
            "l",
            "nomac",
            "02:00:00:00:00:01",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("MAC"));
    assert!(!ev.exists(), "a failed fault must not be recorded");
}
