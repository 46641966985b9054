//! Portal and mail security against the real binaries (issue 14, findings 1 and 8):
//!
//! - TOTP brute force: "right password, wrong code, right password again, ..." against the
//!   real `mimamori-cloud` over HTTP (curl with a cookie jar, CSRF tokens read from the
//!   forms, codes from oathtool) locks the second factor within 5 wrong codes, and the
//!   right password with the right code is refused while it is locked.
//! - Forged lines: a TLS ClientHello whose SNI carries CR/LF and lines that imitate the
//!   mail (`Subject: forged`, `重要度: ★★★`) goes through the real appliance (`replay
//!   --uplink` of a capture written here) to the real cloud; the delivered mail (read from
//!   the real SMTP server) has no forged line and shows the SNI escaped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mimamori_tests::cloud::*;
use mimamori_tests::pcapgen::Pcap;
use mimamori_tests::{appliance, run, tempdir};

const USER: &str = "suzuki@example.co.jp";
const NEW_PASSWORD: &str = "Kaisha-Mimamori-2026";
/// What the portal says when the account (or its second factor) is locked.
const LOCKED_JA: &str = "ロック";
/// What it says for a wrong code.
const WRONG_CODE_JA: &str = "コードが正しくありません";

/// The temporary password of the `nth` (from 1) account mail to `to`.
fn temporary_password(smtp: &Smtp, to: &str, nth: usize) -> String {
    temporary_passwords(smtp, to, nth)[nth - 1].clone()
}

/// An answer of the portal.
struct Page {
    status: u16,
    /// `Location` of a redirect (path), empty otherwise.
    location: String,
    body: String,
}

/// One browser: curl with its own cookie jar.
struct Web {
    base: String,
    jar: PathBuf,
    out: PathBuf,
}

impl Web {
    fn new(c: &Cloud, dir: &Path, name: &str) -> Web {
        Web {
            base: c.portal_url(),
            jar: dir.join(format!("{name}.cookies")),
            out: dir.join(format!("{name}.html")),
        }
    }

    fn request(&self, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .arg("-o")
            .arg(&self.out)
            .args(["-w", "%{http_code}\n%{redirect_url}"]);
        if let Some(form) = form {
            for (k, v) in form {
                cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
            }
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let w = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, location) = w.split_once('\n').unwrap_or((&w, ""));
        let location = location
            .trim()
            .strip_prefix(&self.base)
            .unwrap_or(location.trim())
            .to_string();
        Page {
            status: status.trim().parse().unwrap_or(0),
            location,
            body: std::fs::read_to_string(&self.out).unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Page {
        self.request(path, None)
    }

    /// Submit the form of the page at `page` (its CSRF token) to `action`.
    fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let p = self.get(page);
        assert_eq!(p.status, 200, "GET {page}: {}", p.body);
        let csrf = csrf_of(&p.body);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.request(action, Some(&all))
    }

    fn login(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
    }
}

fn csrf_of(html: &str) -> String {
    let i = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in\n{html}"))
        + "name=\"csrf\" value=\"".len();
    html[i..].split('"').next().unwrap_or("").to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The TOTP code of `step` (30-second steps), by oathtool.
fn totp_at(secret: &str, step: u64) -> String {
    let out = run(Command::new("oathtool").args([
        "--totp",
        "-b",
        "--now",
        &format!("@{}", step * 30 + 1),
        secret,
    ]));
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The current step, once at least 5 s remain in it (a code computed now is still in the
/// server's window when it arrives).
fn settled_step() -> u64 {
    while unix_now() % 30 > 24 {
        std::thread::sleep(Duration::from_millis(500));
    }
    unix_now() / 30
}

/// A six-digit code that is none of the codes valid around now.
fn wrong_code(secret: &str) -> String {
    let now = unix_now() / 30;
    let valid: Vec<String> = (now - 2..=now + 2).map(|s| totp_at(secret, s)).collect();
    (0..)
        .map(|i: u32| format!("{:06}", (i * 7919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

#[test]
fn totp_guesses_after_password_reentry_lock_within_five_wrong_codes() {
    let dir = tempdir("sec-portal-totp");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let (contract, _, _) = provision(&c, &[]);
    c.admin(&[
        "user",
        "add",
        "--contract",
        &contract.to_string(),
        "--email",
        USER,
    ]);
    let temp = temporary_password(&smtp, USER, 1);

    // the owner's first login: temporary password, a new password, the authenticator
    let owner = Web::new(&c, &dir, "owner");
    let p = owner.login(USER, &temp);
    assert_eq!(p.location, "/password", "{}", p.body);
    let p = owner.submit(
        "/password",
        "/password",
        &[("new", NEW_PASSWORD), ("again", NEW_PASSWORD)],
    );
    assert_eq!(p.location, "/mfa/setup", "{}", p.body);
    let setup = owner.get("/mfa/setup");
    let secret: String = setup
        .body
        .split("<code id=\"secret\">")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("the key on the enrolment page")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    // the previous step: still in the window, and leaves the next ones for the logins below
    let enrolled = settled_step() - 1;
    let p = owner.submit(
        "/mfa/setup",
        "/mfa/setup",
        &[("code", &totp_at(&secret, enrolled))],
    );
    assert_eq!(p.location, "/mfa/recovery", "{}", p.body);

    // the legitimate path: password and the right code lead to the dashboard
    let legit = Web::new(&c, &dir, "legit");
    let p = legit.login(USER, NEW_PASSWORD);
    assert_eq!(p.location, "/login/totp", "{}", p.body);
    let step = settled_step().max(enrolled + 1);
    let p = legit.submit(
        "/login/totp",
        "/login/totp",
        &[("code", &totp_at(&secret, step))],
    );
    assert_eq!(p.location, "/", "the right code logs in: {}", p.body);
    assert_eq!(legit.get("/").status, 200);

    // a login that has passed the password step before the attack (to try the right
    // code on once the attack has locked the second factor)
    let waiting = Web::new(&c, &dir, "waiting");
    assert_eq!(waiting.login(USER, NEW_PASSWORD).location, "/login/totp");

    // the attack: the (stolen) password again and again, one wrong code each time
    let attacker = Web::new(&c, &dir, "attacker");
    let mut wrong = 0;
    let mut locked = false;
    for _ in 0..15 {
        let p = attacker.login(USER, NEW_PASSWORD);
        if p.location != "/login/totp" {
            assert!(
                p.body.contains(LOCKED_JA),
                "the right password is refused only as locked: {} {}",
                p.location,
                p.body
            );
            locked = true;
            break;
        }
        let p = attacker.submit(
            "/login/totp",
            "/login/totp",
            &[("code", &wrong_code(&secret))],
        );
        wrong += 1;
        assert_ne!(p.location, "/", "a wrong code never logs in");
        if p.body.contains(LOCKED_JA) {
            locked = true;
            break;
        }
        assert!(p.body.contains(WRONG_CODE_JA), "{}", p.body);
    }
    eprintln!("locked after {wrong} wrong codes");
    assert!(
        locked && wrong <= 5,
        "the second factor must lock within 5 wrong codes across password re-entries \
         (locked: {locked}, wrong codes sent: {wrong})"
    );

    // while locked: the right password and the right code are refused, in a login that
    // began before the lock and in a new one
    let right = totp_at(&secret, unix_now() / 30 + 1);
    let p = waiting.submit("/login/totp", "/login/totp", &[("code", &right)]);
    assert_ne!(p.location, "/", "the right code is refused while locked");
    assert!(p.body.contains(LOCKED_JA), "{}", p.body);
    assert_ne!(waiting.get("/").status, 200);
    let fresh = Web::new(&c, &dir, "fresh");
    let p = fresh.login(USER, NEW_PASSWORD);
    assert_ne!(
        p.location, "/login/totp",
        "a new login cannot reset the lock"
    );
    assert!(p.body.contains(LOCKED_JA), "{}", p.body);
    assert_ne!(fresh.get("/").status, 200);
    // the operator sees it
    let users = c.admin(&["user", "list", "--contract", &contract.to_string()]);
    assert_eq!(users[0]["locked"], true, "{users}");
    // and the logged-in owner's session was not touched by the attack
    assert_eq!(legit.get("/").status, 200);
    drop(c);
    drop(smtp);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Finding 8: forged lines through the SNI
// ---------------------------------------------------------------------------------------

/// The SNI the attacker's client sends: a listed phishing domain at the end (so the
/// appliance blocks it and reports it), lines that imitate the mail before it.
const FORGED_SNI: &[u8] = b"x\r\nSubject: forged\r\n\xe9\x87\x8d\xe8\xa6\x81\xe5\xba\xa6: \xe2\x98\x85\xe2\x98\x85\xe2\x98\x85\r\n.phish-login.example";

/// A TLS 1.2 ClientHello record with `sni` as its server_name.
fn client_hello(sni: &[u8]) -> Vec<u8> {
    let mut sni_ext = Vec::new();
    let list_len = 3 + sni.len();
    sni_ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni_ext.push(0); // host_name
    sni_ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(sni);
    let mut exts = Vec::new();
    exts.extend_from_slice(&0u16.to_be_bytes()); // server_name
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2f, 0x13, 0x01]);
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A capture of one TLS connection from 198.18.0.10 whose ClientHello carries `sni`.
fn tls_capture(path: &Path, sni: &[u8]) {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    let client = ([198, 18, 0, 10], 51000);
    let server = ([198, 19, 0, 5], 443);
    let (c, s) = (7000u32, 9000u32);
    let hello = client_hello(sni);
    let mut pcap = Pcap::new();
    pcap.tcp(client, server, c, 0, SYN, &[]);
    pcap.tcp(server, client, s, c + 1, SYN | ACK, &[]);
    pcap.tcp(client, server, c + 1, s + 1, ACK, &[]);
    pcap.tcp(client, server, c + 1, s + 1, ACK | PSH, &hello);
    pcap.tcp(server, client, s + 1, c + 1 + hello.len() as u32, ACK, &[]);
    pcap.write(path);
}

/// No header or body line of `mail` is (or starts with) a line the attacker wrote.
fn assert_no_forged_line(mail: &str) {
    let (head, _) = mail
        .split_once("\r\n\r\n")
        .or_else(|| mail.split_once("\n\n"))
        .expect("a mail has a head and a body");
    let subjects = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("subject:"))
        .count();
    assert_eq!(subjects, 1, "exactly one Subject header:\n{head}");
    assert!(
        !subject(mail).contains("forged"),
        "subject: {}",
        subject(mail)
    );
    for l in head.lines() {
        assert!(
            !l.to_ascii_lowercase().starts_with("subject: forged"),
            "forged header {l:?}"
        );
    }
    let body = body_of(mail);
    for l in body.lines() {
        let t = l.trim_start();
        assert!(
            !t.starts_with("Subject: forged") && !t.starts_with("重要度: ★★★"),
            "forged line {l:?} in the body:\n{body}"
        );
        assert!(!l.contains('\r'), "a bare CR in the body: {l:?}");
    }
}

#[test]
fn a_newline_in_the_sni_forges_no_line_in_the_alert_mail() {
    let dir = tempdir("sec-portal-sni");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(
        &dir,
        smtp.port,
        "mail_window = \"1s\"\nstartup_grace = \"1h\"\nmail_retry_min = \"1s\"",
    );
    let to = "it@example.co.jp";
    let (_, _, code) = provision(&c, &[to]);
    let state = dir.join("state");
    let out = activate(&c, &state, &code);
    assert!(
        out.status.success(),
        "activation: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = dir.join("forged-sni.pcap");
    tls_capture(&pcap, FORGED_SNI);
    // the phishing list names the domain at the end of the SNI; a rule on tls.sni too
    std::fs::create_dir_all(dir.join("cats/phishing")).expect("mkdir");
    std::fs::write(dir.join("cats/phishing/domains"), "phish-login.example\n").expect("list");
    let rules = dir.join("sni.rules");
    std::fs::write(
        &rules,
        "alert tls $HOME_NET any -> $EXTERNAL_NET any (msg:\"TEST phishing SNI (test)\"; tls.sni; content:\"phish-login.example\"; sid:9100001; rev:1;)\n",
    )
    .expect("rules");
    let up = uplink_toml(&dir, &state, 30);
    let out = run(Command::new(appliance())
        .args(["replay", "--mode", "prevent", "--rules"])
        .arg(&rules)
        .arg("--eve")
        .arg(dir.join("eve.json"))
        .arg("--uplink")
        .arg(&up)
        .arg("--categories")
        .arg(dir.join("cats"))
        .args(["--set", "vars.address-groups.HOME_NET=[198.18.0.0/16]"])
        .arg(&pcap));
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the appliance saw the SNI as it was sent (CR/LF included)
    let eve = std::fs::read_to_string(dir.join("eve.json")).expect("eve.json");
    assert!(
        eve.contains("Subject: forged"),
        "the appliance reports the SNI: {eve}"
    );
    // the cloud stored it as sent, and mails it
    let alerts = c.alerts();
    assert!(
        alerts
            .iter()
            .any(|a| a.to_string().contains("Subject: forged")),
        "the forged SNI reached the cloud: {alerts:?}"
    );
    let mut mail = String::new();
    wait_for(
        "the alert mail with the SNI",
        Duration::from_secs(30),
        || match smtp
            .mails()
            .into_iter()
            .find(|(rcpt, m)| rcpt == to && body_of(m).contains("phish-login.example"))
        {
            Some((_, m)) => {
                mail = m;
                true
            }
            None => false,
        },
    );
    for (_, m) in smtp.mails() {
        assert_no_forged_line(&m);
    }
    // the SNI is still there for the reader, escaped on one line
    let body = body_of(&mail);
    let line = body
        .lines()
        .find(|l| l.contains("phish-login.example"))
        .expect("the SNI line");
    assert!(
        line.contains("x\\r\\nSubject: forged\\r\\n重要度: ★★★\\r\\n.phish-login.example"),
        "the SNI shown escaped: {line:?}\n{body}"
    );
    // the export (JSON lines) shows the same escaped domain, never a raw line break
    let export = Command::new("curl")
        .args(["-sS", "-H", &format!("Authorization: Bearer {}", c.token)])
        .arg(format!("http://127.0.0.1:{}/v1/export", c.admin))
        .output()
        .expect("curl export");
    let text = String::from_utf8_lossy(&export.stdout);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let domains: Vec<&str> = rows.iter().filter_map(|r| r["domain"].as_str()).collect();
    assert!(
        domains
            .iter()
            .any(|d| d.contains("\\r\\nSubject: forged") && !d.contains(['\r', '\n'])),
        "export domains: {domains:?}"
    );
    drop(c);
    drop(smtp);
    let _ = std::fs::remove_dir_all(&dir);
}
