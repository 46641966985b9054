//! The bridge's command line without a network: `ssid render`, `run --check`, bad
//! configurations and a missing port give clear errors.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use mimamori_tests::{appliance, run, tempdir};

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a test file");
    // configurations with passphrases must not be readable by everyone (or are refused)
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn ssid_render_writes_hostapd_conf_and_refuses_other_modes() {
    let dir = tempdir("ssid");
    let cfg = write(
        &dir,
        "a.toml",
        "[ports]\nwan = \"eth0\"\nlan = \"eth1\"\n[ssid1]\nssid = \"Office\"\nsecurity = \"wpa2-psk\"\npassphrase = \"correct horse battery\"\nchannel = 11\n[ssid2]\nssid = \"Guest\"\nsecurity = \"wpa-wpa2-psk\"\ncipher = \"aes\"\npassphrase = \"guests only please\"\n",
    );
    let out_dir = dir.join("out");
    let o = run(Command::new(appliance())
        .args(["ssid", "render", "--config"])
        .arg(&cfg)
        .arg("--out-dir")
        .arg(&out_dir));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let one = std::fs::read_to_string(out_dir.join("hostapd-ssid1.conf")).expect("ssid1 file");
    let kv: Vec<&str> = one.lines().filter(|l| !l.starts_with('#')).collect();
    for want in [
        "ssid=Office",
        "hw_mode=g",
        "channel=11",
        "wpa=2",
        "wpa_key_mgmt=WPA-PSK",
        "rsn_pairwise=CCMP",
        "ieee80211n=1",
        "wpa_passphrase=correct horse battery",
    ] {
        assert!(
            kv.contains(&want),
            "hostapd-ssid1.conf lacks `{want}`:\n{one}"
        );
    }
    let two = std::fs::read_to_string(out_dir.join("hostapd-ssid2.conf")).expect("ssid2 file");
    assert!(two.lines().any(|l| l == "wpa=3"), "{two}");
    let mode = std::fs::metadata(out_dir.join("hostapd-ssid1.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the file with the passphrase is readable by others: {mode:o}"
    );

    for (bad, want) in [
        (
            "security = \"wep\"\npassphrase = \"abcdefgh\"",
            "ssid1.security",
        ),
        (
            "security = \"wpa2-psk\"\npassphrase = \"abcdefgh\"\nhw_mode = \"a\"",
            "2.4 GHz",
        ),
        (
            "security = \"wpa2-psk\"\npassphrase = \"abcdefgh\"\nchannel = 36",
            "ssid1.channel",
        ),
        (
            "security = \"wpa2-psk\"\npassphrase = \"short\"",
            "ssid1.passphrase",
        ),
        ("security = \"802.1x\"", "radius"),
    ] {
        let cfg = write(
            &dir,
            "bad.toml",
            &format!(
                "[ports]\nwan = \"eth0\"\nlan = \"eth1\"\n[ssid1]\nssid = \"Office\"\n{bad}\n"
            ),
        );
        let o = run(Command::new(appliance())
            .args(["ssid", "render", "--config"])
            .arg(&cfg));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.contains(want),
            "{bad}: error does not name `{want}`: {err}"
        );
        assert!(
            !err.contains("abcdefgh"),
            "the passphrase leaked into an error: {err}"
        );
    }
}

#[test]
fn run_refuses_bad_configurations_clearly() {
    let dir = tempdir("runcfg");
    let cases = [
        ("[ports]\nwan = \"eth0\"\n", "at least two ports"),
        (
            "mode = \"block\"\n[ports]\nwan = \"a\"\nlan = \"b\"\n",
            "mode",
        ),
        (
            "[ports]\nwan = \"a\"\nlan = \"b\"\n[bridge]\nworkers = 0\n",
            "bridge.workers",
        ),
        (
            "[ports]\nwan = \"a\"\nlan = \"b\"\n[isolation]\nallow = [\"198.18.0.1:http\"]\n",
            "isolation.allow",
        ),
        (
            "[ports]\nwan = \"a\"\nlan = \"b\"\nfail_open = true\n",
            "fail_open",
        ),
        ("[ports\nwan = \"a\"\n", "toml"),
    ];
    for (text, want) in cases {
        let cfg = write(&dir, "c.toml", text);
        let o = run(Command::new(appliance())
            .args(["run", "--config"])
            .arg(&cfg));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{text}: error does not name `{want}`: {err}"
        );
    }
    // a valid configuration checks out without opening ports
    let rules = write(
        &dir,
        "r.rules",
        "alert tcp any any -> any 80 (msg:\"x\"; content:\"GET\"; sid:1;)\n",
    );
    let cfg = write(
        &dir,
        "ok.toml",
        &format!(
            "[ports]\nwan = \"mm-no-such0\"\nlan = \"mm-no-such1\"\n[inspection]\nrules = [\"{}\"]\n",
            rules.display()
        ),
    );
    let o = run(Command::new(appliance())
        .args(["run", "--check", "--config"])
        .arg(&cfg));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the ports do not exist: `run` says which one
    let o = run(Command::new(appliance())
        .args(["run", "--config"])
        .arg(&cfg));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mm-no-such0"), "{err}");
}
