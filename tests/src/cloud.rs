//! The cloud test harness: the release `mimamori-cloud` binary on loopback ports, a real
//! SMTP server (python3-aiosmtpd) and helpers to provision, activate and feed devices.
//! Used by `tests/tests/cloud.rs` and the portal tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{appliance, corpus, release_bin, root, run};

/// The release build of the cloud binary (or the binary named by `MIMAMORI_CLOUD_BIN`,
/// e.g. an older build to show that an attack worked against it).
pub fn cloud_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MIMAMORI_CLOUD_BIN") {
        return PathBuf::from(p);
    }
    release_bin("mimamori-cloud", "mimamori-cloud")
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a loopback port")
        .local_addr()
        .expect("the address of a bound socket")
        .port()
}

/// Poll `f` every 100 ms until it holds; panic naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Whether something accepts connections on 127.0.0.1:`p`.
pub fn port_open(p: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
}

/// `program` to run in the network namespace `netns` (`ip netns exec`), or here.
pub fn command_in(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether something accepts connections on 127.0.0.1:`p` of the namespace `netns`.
pub fn port_open_in(netns: Option<&str>, p: u16) -> bool {
    match netns {
        None => port_open(p),
        Some(_) => command_in(netns, "bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{p}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// The temporary passwords of the account mails to `to`, oldest first; waits (60 s at
/// most) until there are at least `at_least`.
pub fn temporary_passwords(smtp: &Smtp, to: &str, at_least: usize) -> Vec<String> {
    let mut found = Vec::new();
    wait_for("the account mail", Duration::from_secs(60), || {
        found = smtp
            .mails()
            .into_iter()
            .filter(|(rcpt, _)| rcpt == to)
            .filter_map(|(_, m)| {
                body_of(&m)
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("仮パスワード: ").map(str::to_string))
            })
            .map(|p| p.trim().to_string())
            .collect();
        found.len() >= at_least
    });
    found
}

/// The SMTP server (aiosmtpd), one .eml file per delivered (message, recipient).
pub struct Smtp {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

/// Where a cloud runs: in this namespace on loopback, or in a lab namespace.
#[derive(Clone, Default)]
pub struct Place {
    /// The network namespace (`None`: the test's own).
    pub netns: Option<String>,
    /// The address the ingest listens on (default 127.0.0.1).
    pub ingest_ip: Option<String>,
    /// Extra names for the ingest's server certificate.
    pub server_names: Vec<String>,
}

impl Smtp {
    /// Start the sink on 127.0.0.1:`port` writing into `dir` (installs python3-aiosmtpd
    /// when missing).
    pub fn start(dir: &Path, port: u16) -> Smtp {
        Smtp::start_in(None, dir, port)
    }

    /// Like `start`, in the network namespace `netns` (on its loopback).
    pub fn start_in(netns: Option<&str>, dir: &Path, port: u16) -> Smtp {
        if Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            let st = Command::new("apt-get")
                .args(["install", "-y", "-qq", "python3-aiosmtpd"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
            assert!(
                st.is_ok_and(|s| s.success()),
                "python3-aiosmtpd is needed (apt-get install python3-aiosmtpd)"
            );
        }
        let child = command_in(netns, "/usr/bin/python3")
            .arg(root().join("tests/smtp/sink.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting the SMTP sink");
        wait_for("the SMTP server", Duration::from_secs(15), || {
            port_open_in(netns, port)
        });
        Smtp {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Stop the server (the delivered mails stay).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Delivered mails: (recipient, whole text).
    pub fn mails(&self) -> Vec<(String, String)> {
        let mut v: Vec<(u64, String, String)> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .filter_map(|e| {
                        let n: u64 = e.path().file_stem()?.to_str()?.parse().ok()?;
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        let to = text
                            .lines()
                            .next()?
                            .trim_start_matches("X-Envelope-To: ")
                            .trim()
                            .to_string();
                        Some((n, to, text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, a, b)| (a, b)).collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The decoded text body of a mail (base64, quoted-printable or plain).
pub fn body_of(mail: &str) -> String {
    let (head, rest) = mail
        .split_once("\r\n\r\n")
        .or_else(|| mail.split_once("\n\n"))
        .unwrap_or((mail, ""));
    let head = head.to_ascii_lowercase();
    if head.contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let joined: String = rest.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(joined)
            .unwrap_or_default();
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    if head.contains("content-transfer-encoding: quoted-printable") {
        let text = rest.replace("=\r\n", "").replace("=\n", "");
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        return String::from_utf8_lossy(&out).into_owned();
    }
    rest.to_string()
}

/// Decoded `Subject:` of a mail (RFC 2047 base64 or quoted-printable UTF-8 words).
pub fn subject(mail: &str) -> String {
    let mut lines = mail.lines().skip_while(|l| !l.starts_with("Subject:"));
    let mut raw = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("Subject:")
        .trim()
        .to_string();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            raw.push_str(l.trim());
        } else {
            break;
        }
    }
    decode_words(&raw)
}

/// Decode RFC 2047 encoded words (`=?charset?B|Q?...?=`) in a header value.
pub fn decode_words(s: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("=?") {
        out.push_str(rest[..i].trim());
        let Some(end) = rest[i + 2..].find("?=") else {
            break;
        };
        let word = &rest[i + 2..i + 2 + end];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        if parts.len() == 3 {
            let bytes = if parts[1].eq_ignore_ascii_case("B") {
                base64::engine::general_purpose::STANDARD
                    .decode(parts[2])
                    .unwrap_or_default()
            } else {
                let mut b = Vec::new();
                let q = parts[2].replace('_', " ");
                let mut it = q.bytes();
                while let Some(c) = it.next() {
                    if c == b'=' {
                        let h: Vec<u8> = it.by_ref().take(2).collect();
                        b.push(
                            u8::from_str_radix(std::str::from_utf8(&h).unwrap_or("3f"), 16)
                                .unwrap_or(b'?'),
                        );
                    } else {
                        b.push(c);
                    }
                }
                b
            };
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
        rest = &rest[i + 2 + end + 2..];
    }
    out.push_str(rest.trim());
    out
}

/// The bootstrap token of the test clouds (`[admin] token`): it may only manage operators.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef";

/// A running cloud (`mimamori-cloud serve`) with its configuration in `dir/cloud.toml`,
/// its data in `dir/data` and its log appended to `dir/cloud.log`. Admin calls use the
/// token of the operator `harness-N`, created with the bootstrap token at the first start
/// and kept in `dir/operator.token` across restarts.
pub struct Cloud {
    pub child: Option<Child>,
    pub config: PathBuf,
    pub ingest: u16,
    pub admin: u16,
    /// The portal's port (a free loopback port).
    pub portal: u16,
    pub dir: PathBuf,
    pub place: Place,
    /// The operator token of [`Cloud::admin`] (empty until the cloud first started).
    pub token: String,
}

impl Cloud {
    /// A cloud in a lab namespace (`place`), mailing through its 127.0.0.1:`smtp_port`.
    pub fn start_in(place: Place, dir: &Path, smtp_port: u16, timing: &str) -> Cloud {
        Cloud::launch_in(place, dir, smtp_port, timing, "", true)
    }

    /// A cloud mailing through 127.0.0.1:`smtp_port`, with `timing` as the body of its
    /// `[timing]` section; every listener (ingest, admin, portal) on a free loopback port.
    pub fn start(dir: &Path, smtp_port: u16, timing: &str) -> Cloud {
        Cloud::launch(dir, smtp_port, timing, "", true)
    }

    /// Like `start`, with `extra_top` (top-level `key = value` lines) inserted before the
    /// first `[section]` of the configuration.
    pub fn start_with(dir: &Path, smtp_port: u16, timing: &str, extra_top: &str) -> Cloud {
        Cloud::launch(dir, smtp_port, timing, extra_top, true)
    }

    fn launch(dir: &Path, smtp_port: u16, timing: &str, extra_top: &str, portal: bool) -> Cloud {
        Cloud::launch_in(Place::default(), dir, smtp_port, timing, extra_top, portal)
    }

    fn launch_in(
        place: Place,
        dir: &Path,
        smtp_port: u16,
        timing: &str,
        extra_top: &str,
        portal: bool,
    ) -> Cloud {
        let ingest = free_port();
        let admin = free_port();
        let portal = if portal { free_port() } else { 0 };
        let config = dir.join("cloud.toml");
        let mut top = extra_top.to_string();
        if !top.is_empty() && !top.ends_with('\n') {
            top.push('\n');
        }
        let portal_section = if portal != 0 {
            format!("[portal]\nlisten = \"127.0.0.1:{portal}\"\n")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n{top}[ingest]\nlisten = \"{}:{ingest}\"\nserver_names = {:?}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{BOOTSTRAP_TOKEN}\"\n{portal_section}[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n[timing]\n{timing}\n",
                dir.join("data"),
                place.ingest_ip.as_deref().unwrap_or("127.0.0.1"),
                place.server_names,
            ),
        )
        .expect("writing cloud.toml");
        let mut c = Cloud {
            child: None,
            config,
            ingest,
            admin,
            portal,
            dir: dir.to_path_buf(),
            place,
            token: String::new(),
        };
        c.spawn();
        c
    }

    /// Start the binary on the existing configuration and wait until it listens (ingest,
    /// admin, and the portal when configured).
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("cloud.log"))
            .expect("opening cloud.log");
        let ns = self.place.netns.clone();
        let child = command_in(ns.as_deref(), cloud_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mimamori-cloud");
        self.child = Some(child);
        let (i, a, p) = (self.ingest, self.admin, self.portal);
        let ns = ns.as_deref();
        let ingest_ip = self.place.ingest_ip.clone();
        wait_for("the cloud to listen", Duration::from_secs(20), || {
            let ingest = match (&ingest_ip, ns) {
                (Some(ip), Some(_)) => command_in(ns, "bash")
                    .args(["-c", &format!("exec 3<>/dev/tcp/{ip}/{i}")])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                _ => port_open_in(ns, i),
            };
            ingest && port_open_in(ns, a) && (p == 0 || port_open_in(ns, p))
        });
        self.ensure_operator();
    }

    /// The operator token the harness uses: the one kept in `dir/operator.token` while it
    /// works, else a new operator made with the bootstrap token.
    pub fn ensure_operator(&mut self) {
        let file = self.dir.join("operator.token");
        if let Ok(t) = std::fs::read_to_string(&file) {
            self.token = t.trim().to_string();
            if self.admin_as(&self.token, &["operator", "list"]).status.success() {
                return;
            }
        }
        for n in 1..100 {
            let name = format!("harness-{n}");
            let out = self.admin_as(BOOTSTRAP_TOKEN, &["operator", "add", "--name", &name]);
            if !out.status.success() {
                continue;
            }
            let v: Value = serde_json::from_slice(&out.stdout).expect("operator add answers JSON");
            self.token = v["token"]
                .as_str()
                .expect("operator add answers a token")
                .to_string();
            std::fs::write(&file, &self.token).expect("writing operator.token");
            return;
        }
        panic!("could not create an operator with the bootstrap token; see cloud.log");
    }

    /// Run `mimamori-cloud admin --json <args>` with `token`.
    pub fn admin_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        run(command_in(self.place.netns.as_deref(), cloud_bin())
            .args([
                "admin",
                "--api",
                &format!("http://127.0.0.1:{}", self.admin),
                "--token",
                token,
                "--json",
            ])
            .args(args))
    }

    /// SIGKILL the cloud (nothing flushed, nothing said goodbye).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn admin_run(&self, args: &[&str]) -> std::process::Output {
        self.admin_as(&self.token, args)
    }

    /// Run `mimamori-cloud admin --json <args>`; panics when it fails. The JSON answer, or
    /// the output as a string when it is not JSON.
    pub fn admin(&self, args: &[&str]) -> Value {
        let out = self.admin_run(args);
        assert!(
            out.status.success(),
            "admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()))
    }

    /// Run an admin command that must fail; its stderr.
    pub fn admin_err(&self, args: &[&str]) -> String {
        let out = self.admin_run(args);
        assert!(!out.status.success(), "admin {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// The ingest address (`127.0.0.1:<port>`, or the lab address it listens on).
    pub fn addr(&self) -> String {
        format!(
            "{}:{}",
            self.place.ingest_ip.as_deref().unwrap_or("127.0.0.1"),
            self.ingest
        )
    }

    /// The portal's base URL (`http://127.0.0.1:<port>`); panics without a `[portal]`.
    pub fn portal_url(&self) -> String {
        assert!(
            self.portal != 0,
            "this cloud has no [portal] section (use Cloud::start_portal)"
        );
        format!("http://127.0.0.1:{}", self.portal)
    }

    /// Every stored alert (`alert list`).
    pub fn alerts(&self) -> Vec<Value> {
        self.admin(&["alert", "list", "--limit", "100000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One contract with the given addresses (at most three) and one device; returns
/// (contract id, device id, activation code).
pub fn provision(c: &Cloud, emails: &[&str]) -> (u64, String, String) {
    let cust = c.admin(&[
        "customer",
        "add",
        "--company",
        "山田商店",
        "--contact-email",
        "owner@example.com",
    ]);
    let cust_id = cust["id"]
        .as_u64()
        .expect("customer add answers an id")
        .to_string();
    let mut args = vec![
        "contract",
        "add",
        "--customer",
        &cust_id,
        "--name",
        "山田商店 本店",
        "--application-date",
        "2026-04-03",
    ];
    for e in emails {
        args.push("--email");
        args.push(e);
    }
    let contract = c.admin(&args);
    let cid = contract["id"].as_u64().expect("contract add answers an id");
    let devs = c.admin(&[
        "device",
        "add",
        "--contract",
        &cid.to_string(),
        "--name",
        "本店UTM",
    ]);
    (
        cid,
        devs[0]["device_id"]
            .as_str()
            .expect("device add answers a device_id")
            .to_string(),
        devs[0]["activation_code"]
            .as_str()
            .expect("device add answers an activation_code")
            .to_string(),
    )
}

/// The cloud's CA certificate (`admin ops ca`) written to `dir/cloud-ca.pem`.
pub fn ca_file(c: &Cloud) -> PathBuf {
    let p = c.dir.join("cloud-ca.pem");
    let out = run(command_in(c.place.netns.as_deref(), cloud_bin()).args([
        "admin",
        "--api",
        &format!("http://127.0.0.1:{}", c.admin),
        "--token",
        &c.token,
        "ops",
        "ca",
    ]));
    assert!(
        out.status.success(),
        "admin ops ca failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&p, &out.stdout).expect("writing cloud-ca.pem");
    p
}

/// `mimamori-appliance activate` against `c` with `code`, keeping its state in `state`.
pub fn activate(c: &Cloud, state: &Path, code: &str) -> std::process::Output {
    run(Command::new(appliance())
        .args([
            "activate",
            "--cloud",
            &c.addr(),
            "--code",
            code,
            "--state-dir",
        ])
        .arg(state)
        .arg("--ca")
        .arg(ca_file(c)))
}

/// An uplink configuration (`dir/uplink.toml`) for the activated state in `state`.
pub fn uplink_toml(dir: &Path, state: &Path, drain_secs: u64) -> PathBuf {
    let p = dir.join("uplink.toml");
    std::fs::write(&p, format!("state_dir = {state:?}\nheartbeat_secs = 1\nbatch_max = 64\ndrain_timeout_secs = {drain_secs}\n")).expect("writing uplink.toml");
    p
}

/// Rules that fire on the CryptoWall C2 capture at three levels of importance.
pub const C2_RULES: &str = r#"alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET MALWARE CryptoWall Check-in (test)"; flow:established,to_server; content:"POST /76N1Lm.php"; classtype:trojan-activity; metadata: signature_severity Major, confidence High; sid:9000001; rev:1;)
alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET MALWARE CryptoWall Beacon Body (test)"; flow:established,to_server; content:"Content-Type"; classtype:trojan-activity; metadata: signature_severity Minor, confidence Low; sid:9000002; rev:1;)
alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET INFO Suspicious PHP POST (test)"; flow:established,to_server; content:"User-Agent"; classtype:misc-activity; sid:9000003; rev:1;)
"#;

/// `mimamori-cloud admin rules import <path>`: the cloud learns the rules of `path` (a
/// `.rules` file or a folder), which it scores alerts from (an alert for a rule it does
/// not know is rated 調査中). Returns the import report.
pub fn import_rules(c: &Cloud, path: &Path) -> Value {
    let p = path.to_string_lossy().to_string();
    c.admin(&["rules", "import", &p])
}

/// Writes `rules` to `c.dir/<name>` and imports it into the cloud's rule catalogue.
pub fn import_rules_text(c: &Cloud, name: &str, rules: &str) -> Value {
    let p = c.dir.join(name);
    std::fs::write(&p, rules).expect("writing the rules to import");
    import_rules(c, &p)
}

/// The cloud's copy of the two rules `mimamori-appliance simulate` reports alerts of
/// (`uplink::simulate::synthetic_alert`): without them the cloud rates those alerts 調査中.
pub const SIMULATED_RULES: &str = r#"alert tcp $HOME_NET any -> $EXTERNAL_NET 443 (msg:"ET MALWARE Simulated Win32/Agent CnC Beacon"; flow:established,to_server; content:"simulated-c2"; classtype:trojan-activity; metadata: attack_target Client_Endpoint, confidence High, malware_family Simulated, signature_severity Major; sid:2999001; rev:1;)
alert tcp $HOME_NET any -> $EXTERNAL_NET 80 (msg:"ET INFO Simulated Suspicious User-Agent"; flow:established,to_server; content:"simulated"; classtype:bad-unknown; metadata: confidence Medium, signature_severity Minor; sid:2999002; rev:1;)
"#;

/// Replay the CryptoWall C2 capture with `rules` (written to `dir/c2.rules`), EVE to
/// `dir/eve.json`, delivering alerts through `uplink`.
pub fn replay_uplink(dir: &Path, uplink: &Path, rules: &str) -> std::process::Output {
    let rf = dir.join("c2.rules");
    std::fs::write(&rf, rules).expect("writing c2.rules");
    run(Command::new(appliance())
        .args(["replay", "--rules"])
        .arg(&rf)
        .args(["--eve"])
        .arg(dir.join("eve.json"))
        .arg("--uplink")
        .arg(uplink)
        .arg(corpus().join("pcaps/chrissanders/cryptowall4_c2.pcapng")))
}
