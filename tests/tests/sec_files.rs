//! Issue 21, findings 7 and 8: the appliance's local files against a local user, and the
//! wipe against a box that leaves the customer.
//!
//! * Under `umask 022` the real appliance (activated, with traffic, a cloud command and a
//!   rule bundle) leaves its state folder 0700 and every file it wrote 0600: EVE, spool,
//!   `runtime.json`, identity and key, unpacked bundles, `mgmt.mac`, the control socket,
//!   `ssid render`'s hostapd files (made 0600 even when they existed 0644).
//! * A configuration holding secrets that every user can read is refused with the file and
//!   the fix named; group-readable gives a warning.
//! * The control socket's folder (a link, another user's folder), a link at the socket
//!   path and a link in the state folder are refused, and nothing is chmod-ed through a
//!   link.
//! * The cloud's wipe leaves no file under the state folder or the configured outputs (EVE
//!   and its rotations, hostapd files, the configuration) with the customer's URLs or
//!   secrets, and its result lists what was removed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mimamori_tests::system::*;
use mimamori_tests::{appliance, run, tempdir};

fn umask_022() {
    // SAFETY: umask has no preconditions; the whole test process (and the appliance it
    // starts) gets the usual loose default
    unsafe {
        libc::umask(0o022);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .map(|m| m.mode() & 0o7777)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every folder and file under `dir` (and `dir`), not following links.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

/// The paths open to group or others: folders other than 0700, files other than 0600.
fn offenders(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| mode(p) & 0o077 != 0)
        .map(|p| format!("{} {:04o}", p.display(), mode(p)))
        .collect()
}

fn eve_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("eve.json"))
        .map(|e| e.path())
        .collect()
}

fn holding(files: &[PathBuf], needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .cloned()
        .collect()
}

const PASSPHRASE: &str = "office-wifi-secret-4711";

/// Findings 7 and 8 end to end: file modes under umask 022, then the cloud's wipe.
#[test]
fn files_are_private_and_the_wipe_leaves_nothing_of_the_customer() {
    umask_022();
    let timing = "mail_window = \"3s\"\nstartup_grace = \"0s\"\nmail_retry_min = \"1s\"";
    let ssid = format!(
        "[ssid1]\nssid = \"Office\"\nsecurity = \"wpa2-psk\"\npassphrase = \"{PASSPHRASE}\"\n"
    );
    let Some(mut s) = System::up_with("fil", timing, false, &[], &ssid) else {
        return;
    };
    let cfg = s.lab.dir.join("test.toml");
    let hostapd = s.lab.dir.join("hostapd");
    // the rendered hostapd files' folder, known to the appliance (for the wipe)
    s.lab.stop();
    let text = std::fs::read_to_string(&cfg).expect("config");
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("activation_code = "))
        .expect("the activation code in the config")
        .trim_matches('"')
        .to_string();
    std::fs::write(
        &cfg,
        text.replacen("[output]\n", &format!("[output]\nhostapd_dir = {hostapd:?}\n"), 1),
    )
    .expect("config");
    s.lab.respawn();
    s.wait_online(Duration::from_secs(60));

    // ssid render: an existing 0644 file (an older render, a copy) becomes 0600
    std::fs::create_dir_all(&hostapd).expect("hostapd dir");
    let old = hostapd.join("hostapd-ssid1.conf");
    std::fs::write(&old, "old render\n").expect("old render");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = run(Command::new(appliance())
        .args(["ssid", "render", "--config"])
        .arg(&cfg));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read_to_string(&old).is_ok_and(|t| t.contains(PASSPHRASE)),
        "ssid render did not write {}",
        old.display()
    );

    // the customer's traffic: URLs with query strings, one of them a C2 check-in (alert)
    let pid = std::process::id();
    let page = format!("visit{pid}page");
    let beacon = format!("sess{pid}beacon");
    let r = s.lab.curl("lan", 5, &["-4", &format!("http://www.lab.test/?q={page}")]);
    assert_eq!(r.code, 0, "the web page: {}", r.stderr);
    let _ = s.lab.curl(
        "lan",
        5,
        &["-4", &format!("http://c2.lab.test/c2/beacon?session={beacon}")],
    );
    wait("the C2 alert in the cloud", 60, || {
        !cloud_alerts(&s, C2_SID).is_empty()
    });
    // a cloud command (runtime.json) and a rule bundle (unpacked in the state folder)
    s.cloud.admin(&[
        "device",
        "isolate",
        &s.device,
        "--host",
        "02:00:00:00:00:99",
    ]);
    let state = s.dir.join("state");
    wait("runtime.json written", 30, || {
        state.join("runtime.json").exists()
    });
    let bundle = s.dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rules")).expect("bundle dir");
    std::fs::write(bundle.join("rules/lab.rules"), format!("{C2_RULE}\n{NEW_RULE}\n"))
        .expect("bundle rules");
    s.cloud.admin(&[
        "rules",
        "publish",
        bundle.to_str().expect("utf-8 path"),
        "--version",
        "lab-1",
    ]);
    wait("bundle lab-1 applied", 90, || {
        s.device()["bundle"]["applied"] == true
    });

    // finding 7: every folder 0700 and file 0600, whatever the umask
    let mut paths = tree(&state);
    for want in [
        "identity.toml",
        "device.key",
        "spool.redb",
        "runtime.json",
        "mgmt.mac",
        "bundles/lab-1/rules/lab.rules",
    ] {
        assert!(
            paths.contains(&state.join(want)),
            "{want} missing from the state folder: {paths:?}"
        );
    }
    let eve = eve_files(&s.lab.dir);
    assert!(
        !holding(&eve, &beacon).is_empty(),
        "the C2 URL is not in EVE: the test would not see a leak"
    );
    paths.extend(eve.iter().cloned());
    // the rendered files (the folder is the operator's, made by this test under umask 022)
    paths.extend(tree(&hostapd).into_iter().skip(1));
    paths.push(s.lab.dir.join("control.sock"));
    let bad = offenders(&paths);
    assert!(
        bad.is_empty(),
        "open to group/others under umask 022:\n{}",
        bad.join("\n")
    );
    assert_eq!(mode(&state), 0o700);

    // finding 8: the contract's wipe
    s.cloud.admin(&["device", "wipe", &s.device]);
    let t = Instant::now();
    while s.lab.exited().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        s.lab.exited().is_some(),
        "the appliance did not stop after the wipe: {}",
        s.lab.log()
    );
    let dev = s.device();
    let wiped = dev["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["what"] == "wipe")
        .cloned()
        .unwrap_or_default();
    assert_eq!(wiped["state"], "done", "{dev}");
    let report = wiped.to_string();
    for want in ["wiped", "state folder", "eve.json", "hostapd", "test.toml"] {
        assert!(report.contains(want), "the wipe's report lacks {want}: {report}");
    }
    let log = s.lab.log();
    assert!(
        log.contains("spool.redb") && log.contains("mgmt.mac"),
        "the log does not list what was wiped:\n{log}"
    );

    let mut left = tree(&state);
    left.retain(|p| p != &state);
    assert!(left.is_empty(), "left in the state folder: {left:?}");
    let mut files = eve_files(&s.lab.dir);
    files.extend(tree(&hostapd));
    files.push(cfg.clone());
    for (what, needle) in [
        ("a URL the customer visited", page.as_str()),
        ("the C2 URL", beacon.as_str()),
        ("the activation code", code.as_str()),
        ("the Wi-Fi passphrase", PASSPHRASE),
    ] {
        let hits = holding(&files, needle);
        assert!(hits.is_empty(), "{what} survived the wipe in {hits:?}");
    }
    // what stays is a configuration that still starts the bridge (factory state)
    let o = run(Command::new(appliance())
        .args(["run", "--check", "--config"])
        .arg(&cfg));
    assert!(
        o.status.success(),
        "the wiped configuration: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn config(dir: &Path, extra: &str, perm: u32) -> PathBuf {
    let p = dir.join("a.toml");
    let rules = dir.join("r.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any 80 (msg:\"x\"; content:\"GET\"; sid:1;)\n",
    )
    .expect("rules");
    std::fs::write(
        &p,
        format!(
            "[ports]\nwan = \"mmfnone0\"\nlan = \"mmfnone1\"\n[inspection]\nrules = [{rules:?}]\n[output]\neve = \"{}/eve.json\"\n{extra}",
            dir.display()
        ),
    )
    .expect("config");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(perm)).expect("chmod");
    p
}

fn appliance_run(args: &[&str], cfg: &Path) -> (Option<i32>, String) {
    let o = run(Command::new(appliance()).args(args).arg("--config").arg(cfg));
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into())
}

/// Finding 7, the configuration: world-readable with secrets is refused (file and fix
/// named), group-readable warned about, 0600 accepted; `ssid render` checks it too.
#[test]
fn a_configuration_with_secrets_readable_by_everyone_is_refused() {
    umask_022();
    let dir = tempdir("secfiles-cfg");
    let ssid = format!(
        "[ssid1]\nssid = \"Office\"\nsecurity = \"wpa2-psk\"\npassphrase = \"{PASSPHRASE}\"\n"
    );
    let cfg = config(&dir, &ssid, 0o644);
    for args in [&["run", "--check"][..], &["ssid", "render"][..]] {
        let (code, err) = appliance_run(args, &cfg);
        assert_eq!(code, Some(1), "{args:?} accepted a world-readable config: {err}");
        assert!(
            err.contains(&cfg.display().to_string())
                && err.contains("chmod 600")
                && err.contains("ssid1.passphrase"),
            "{args:?}: the message does not name the file, the secret and the fix: {err}"
        );
        assert!(!err.contains(PASSPHRASE), "the passphrase leaked: {err}");
    }
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let (code, err) = appliance_run(&["run", "--check"], &cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("group") && err.contains("chmod 600"),
        "no warning for a group-readable config: {err}"
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, err) = appliance_run(&["run", "--check"], &cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("chmod"), "a warning for a 0600 config: {err}");
    // a config without secrets may stay readable
    let plain = config(&dir, "", 0o644);
    let (code, err) = appliance_run(&["run", "--check"], &plain);
    assert_eq!(code, Some(0), "{err}");
    // others may not change it
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let (code, err) = appliance_run(&["run", "--check"], &plain);
    assert_eq!(code, Some(1), "a world-writable config was accepted: {err}");

    // ssid render with --out-dir: an existing 0644 file becomes 0600 (the config with the
    // SSID again: the plain one above was written to the same file)
    let cfg = config(&dir, &ssid, 0o600);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out");
    std::fs::write(out.join("hostapd-ssid1.conf"), "old").expect("old");
    std::fs::set_permissions(
        out.join("hostapd-ssid1.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let o = run(Command::new(appliance())
        .args(["ssid", "render", "--config"])
        .arg(&cfg)
        .arg("--out-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(mode(&out.join("hostapd-ssid1.conf")), 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 7, links and owners: the control socket's folder as a link or of another user,
/// a link at the socket path and a link in the state folder are refused before anything
/// is opened; the links' targets keep their modes. The legitimate path: a missing socket
/// folder is created 0700, a loose state folder of our own is tightened.
#[test]
fn links_and_foreign_folders_are_refused_and_nothing_is_chmoded_through_a_link() {
    umask_022();
    if !mimamori_tests::lab::available() {
        return; // chown needs root
    }
    let dir = tempdir("secfiles-links");
    let victim = dir.join("victim");
    std::fs::write(&victim, "not the appliance's").expect("victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let real = dir.join("real");
    std::fs::create_dir_all(&real).expect("real");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // the socket's folder is a link
    std::os::unix::fs::symlink(&real, dir.join("ctl-link")).expect("link");
    // the socket's folder belongs to someone else
    let foreign = dir.join("ctl-foreign");
    std::fs::create_dir_all(&foreign).expect("foreign");
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
    // a link where the socket goes
    let ctl_file = dir.join("ctl-file");
    std::fs::create_dir_all(&ctl_file).expect("dir");
    std::fs::set_permissions(&ctl_file, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::symlink(&victim, ctl_file.join("control.sock")).expect("link");
    // a link in the state folder
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state");
    std::os::unix::fs::symlink(&victim, state.join("runtime.json")).expect("link");

    for (what, extra, want) in [
        (
            "a linked socket folder",
            format!("control = \"{}/ctl-link/control.sock\"\n", dir.display()),
            "symbolic link",
        ),
        (
            "another user's socket folder",
            format!("control = \"{}/control.sock\"\n", foreign.display()),
            "owned by uid 65534",
        ),
        (
            "a link at the socket path",
            format!("control = \"{}/control.sock\"\n", ctl_file.display()),
            "not a socket",
        ),
        (
            "a link in the state folder",
            format!("[uplink]\nstate_dir = \"{}\"\n", state.display()),
            "symbolic link",
        ),
    ] {
        let cfg = config(&dir, &extra, 0o600);
        let (code, err) = appliance_run(&["run"], &cfg);
        assert_eq!(code, Some(1), "{what} accepted: {err}");
        assert!(err.contains(want), "{what}: the error does not say `{want}`: {err}");
        assert_eq!(mode(&victim), 0o644, "{what}: the link's target was chmod-ed");
        assert_eq!(mode(&real), 0o755, "{what}: the linked folder was chmod-ed");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap_or_default(),
            "not the appliance's",
            "{what}: written through a link"
        );
    }
    assert!(ctl_file.join("control.sock").is_symlink());

    // legitimate: a missing socket folder is created 0700; a loose state folder of our
    // own is tightened (the run then stops at the missing ports)
    std::fs::remove_file(state.join("runtime.json")).expect("unlink");
    std::fs::write(state.join("mgmt.mac"), "02:00:00:00:00:42").expect("mac");
    std::fs::set_permissions(state.join("mgmt.mac"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = config(
        &dir,
        &format!(
            "control = \"{}/new/control.sock\"\n[uplink]\nstate_dir = \"{}\"\n",
            dir.display(),
            state.display()
        ),
        0o600,
    );
    let (_, err) = appliance_run(&["run"], &cfg);
    assert!(err.contains("mmfnone0"), "the run did not get to the ports: {err}");
    assert_eq!(mode(&dir.join("new")), 0o700, "{err}");
    assert_eq!(mode(&state), 0o700, "{err}");
    assert_eq!(mode(&state.join("mgmt.mac")), 0o600, "{err}");
    assert!(err.contains("mgmt.mac was mode 0644"), "no warning: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
