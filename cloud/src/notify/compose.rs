//! Mail texts (Japanese, SPEC §5.3).

use std::fmt::Write;

use crate::clock::{Ms, format_local};
use crate::score::Level;
use crate::store::{AlertRecord, Contract, Device};

fn device_name(devices: &[Device], id: &str) -> String {
    devices.iter().find(|d| d.id == id).map_or_else(
        || id.to_string(),
        |d| {
            if d.name.is_empty() {
                d.id.clone()
            } else {
                format!("{} ({})", d.name, d.id)
            }
        },
    )
}

fn action_ja(a: protocol::messages::Action) -> &'static str {
    use protocol::messages::Action::*;
    match a {
        Allowed => "通過（検知のみ）",
        Blocked => "遮断",
        Disarmed => "無害化（ファイルを遮断）",
        Reset => "通信を切断",
    }
}

const FOOTER: &str = "\n--\nMimamori 見守りサービス\nこのメールは送信専用です。ご不明な点はサポート窓口までお問い合わせください。\n";

/// The batched important-alert mail: (subject, body).
pub fn alert_mail(
    contract: &Contract,
    alerts: &[AlertRecord],
    devices: &[Device],
    tz: i64,
) -> (String, String) {
    let top = alerts
        .iter()
        .map(|a| a.level)
        .max_by_key(|l| l.rank())
        .unwrap_or(Level::Info);
    let subject = format!(
        "【Mimamori】重要アラート {} ({}件) {}",
        top.stars(),
        alerts.len(),
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori が重要なアラートを {} 件検知しました。最も高い重要度は {} です。\n",
        alerts.len(),
        top.label_ja()
    );
    for (i, a) in alerts.iter().enumerate() {
        let f = a.event.flow();
        let _ = writeln!(
            b,
            "■ アラート {} / {}{}",
            i + 1,
            alerts.len(),
            if a.level == Level::Investigating {
                "  ※調査中※"
            } else {
                ""
            }
        );
        let _ = writeln!(
            b,
            "  日時（日本時間）: {}",
            format_local(a.event.time_ms(), tz)
        );
        let _ = writeln!(b, "  重要度: {}", a.level.label_ja());
        let _ = writeln!(b, "  判定理由: {}", crate::sanitize::field(&a.reason));
        let _ = writeln!(b, "  機器: {}", device_name(devices, &a.device));
        let _ = writeln!(
            b,
            "  社内端末: IP {}  MAC {}",
            f.internal_ip, f.internal_mac
        );
        let _ = writeln!(
            b,
            "  通信相手: {}{}",
            f.external_ip,
            f.external_port.map(|p| format!(":{p}")).unwrap_or_default()
        );
        // what() and site() are sanitised: no field from traffic starts a line of its own
        let site = a.event.site();
        if !site.is_empty() {
            let _ = writeln!(b, "  URL / SNI / ドメイン: {site}");
        }
        let _ = writeln!(b, "  脅威: {}", a.event.what());
        let _ = writeln!(b, "  実施した処置: {}", action_ja(a.event.action()));
        let _ = writeln!(b, "  お客様に実施いただく対応: {}", a.level.actions_ja());
        let _ = writeln!(b, "  アラート番号: {}\n", a.id);
    }
    let _ = writeln!(b, "詳細はポータルのアラート画面でご確認いただけます。");
    b.push_str(FOOTER);
    (subject, b)
}

/// Stop notice (first detection or the daily reminder).
pub fn stop_mail(
    contract: &Contract,
    device: &Device,
    last_ms: Ms,
    now: Ms,
    tz: i64,
    daily: bool,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】機器停止のお知らせ{} {}",
        if daily { "（継続中）" } else { "" },
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器「{}」からの通信が途絶えています。",
        device_name(std::slice::from_ref(device), &device.id)
    );
    let _ = writeln!(b, "  最終受信: {}（日本時間）", format_local(last_ms, tz));
    let _ = writeln!(b, "  確認時刻: {}（日本時間）\n", format_local(now, tz));
    let _ = writeln!(
        b,
        "停止している間、ネットワークは保護されていません。機器の電源とケーブル（WAN/LAN）の接続をご確認ください。"
    );
    let _ = writeln!(b, "復旧しない場合はサポート窓口までご連絡ください。");
    b.push_str(FOOTER);
    (subject, b)
}

pub fn recovery_mail(
    contract: &Contract,
    device: &Device,
    stopped_ms: Ms,
    now: Ms,
    tz: i64,
) -> (String, String) {
    let subject = format!("【Mimamori】機器復旧のお知らせ {}", contract.name);
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器「{}」との通信が回復しました。",
        device_name(std::slice::from_ref(device), &device.id)
    );
    let _ = writeln!(
        b,
        "  停止を検知: {}（日本時間）",
        format_local(stopped_ms, tz)
    );
    let _ = writeln!(b, "  復旧: {}（日本時間）", format_local(now, tz));
    b.push_str(FOOTER);
    (subject, b)
}

pub fn rerate_mail(
    contract: &Contract,
    a: &AlertRecord,
    old: Level,
    note: &str,
    tz: i64,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】アラート重要度変更 {} → {} {}",
        old.stars(),
        a.level.stars(),
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "アラート番号 {} の重要度を {} から {} に変更しました。",
        a.id,
        old.label_ja(),
        a.level.label_ja()
    );
    if !note.is_empty() {
        let _ = writeln!(b, "  理由: {note}");
    }
    let _ = writeln!(
        b,
        "  日時（日本時間）: {}",
        format_local(a.event.time_ms(), tz)
    );
    let _ = writeln!(b, "  社内端末: IP {}", a.event.flow().internal_ip);
    let _ = writeln!(b, "  脅威: {}", a.event.what());
    let _ = writeln!(b, "\nお客様に実施いただく対応: {}", a.level.actions_ja());
    b.push_str(FOOTER);
    (subject, b)
}

pub fn result_mail(
    contract: &Contract,
    a: &AlertRecord,
    result: &str,
    tz: i64,
) -> (String, String) {
    let subject = format!("【Mimamori】調査結果のご報告 {}", contract.name);
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "※調査中※ としてお知らせしたアラート番号 {} の調査が完了しました。\n",
        a.id
    );
    let _ = writeln!(
        b,
        "  日時（日本時間）: {}",
        format_local(a.event.time_ms(), tz)
    );
    let _ = writeln!(b, "  社内端末: IP {}", a.event.flow().internal_ip);
    let _ = writeln!(b, "  検知内容: {}", a.event.what());
    let _ = writeln!(b, "\n調査結果:\n{result}\n");
    let _ = writeln!(b, "最終的な重要度: {}", a.level.label_ja());
    b.push_str(FOOTER);
    (subject, b)
}

pub fn firmware_mail(
    contract: &Contract,
    version: &str,
    notes: &str,
    apply: &str,
) -> (String, String) {
    let subject = format!(
        "【Mimamori】ファームウェア更新のお知らせ（{version}） {}",
        contract.name
    );
    let mut b = String::new();
    let _ = writeln!(b, "{} 様\n", contract.name);
    let _ = writeln!(
        b,
        "Mimamori 機器の新しいファームウェア {version} を公開しました。"
    );
    let _ = writeln!(b, "  適用: {apply}");
    if !notes.is_empty() {
        let _ = writeln!(b, "\n変更内容:\n{notes}");
    }
    b.push_str(FOOTER);
    (subject, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertStatus, StoredEvent};
    use crate::testutil::{category_alert, contract, file_verdict, s, sig_alert};
    use protocol::messages::{Action, Direction};

    fn record(event: StoredEvent, reason: &str) -> AlertRecord {
        AlertRecord {
            id: 7,
            contract_id: 1,
            device: "dev-1".into(),
            seq: 1,
            received_ms: 1_750_000_000_000,
            event,
            level: Level::Investigating,
            reason: reason.into(),
            mailed: false,
            deduplicated: false,
            status: AlertStatus::Open,
            history: Vec::new(),
        }
    }

    /// No line of `text` is (or starts with) a line the attacker wrote.
    fn no_forged_line(text: &str) {
        for l in text.lines() {
            let t = l.trim_start();
            assert!(
                !t.starts_with("Subject:")
                    && !t.starts_with("重要度: ★★★")
                    && !t.starts_with("X-Forged"),
                "forged line {l:?} in\n{text}"
            );
        }
    }

    #[test]
    fn traffic_fields_cannot_forge_lines_in_alert_mails() {
        let forged = "a.example\r\nSubject: forged\r\n重要度: ★★★\nX-Forged: 1\u{2028}x\u{1b}[2J";
        let mut cat = category_alert("phishing\r\n重要度: ★★★", Action::Blocked);
        cat.sni = Some(s(forged));
        let mut sig = sig_alert(
            9,
            Direction::Outbound,
            "trojan-activity",
            &[],
            Action::Allowed,
        );
        if let protocol::messages::Detection::Signature(x) = &mut sig.detection {
            x.msg = s("ET TEST\nSubject: forged");
        }
        sig.url = Some(protocol::messages::UrlRef::from_url(
            "http://c2.example/a\r\nX-Forged: 1",
        ));
        let mut file = file_verdict(Action::Disarmed);
        file.name = Some(s("invoice\r\n重要度: ★★★.exe"));
        file.threat = s("Threat\nX-Forged: 2");
        let alerts = [
            record(StoredEvent::Alert(cat), "理由\r\nSubject: forged"),
            record(StoredEvent::Alert(sig), "ok"),
            record(StoredEvent::File(file), "ok"),
        ];
        let c = contract(&["a@example.com"], &[]);
        let (subject, body) = alert_mail(&c, &alerts, &[], 9 * 3600);
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        no_forged_line(&body);
        assert!(!body.contains('\r') && !body.contains('\u{1b}') && !body.contains('\u{2028}'));
        // still there for the reader, escaped
        assert!(
            body.contains(
                "a.example\\r\\nSubject: forged\\r\\n重要度: ★★★\\nX-Forged: 1\\u{2028}x\\x1b[2J"
            ),
            "{body}"
        );
        assert!(body.contains("invoice\\r\\n重要度: ★★★.exe"), "{body}");
        assert!(body.contains("ET TEST\\nSubject: forged"), "{body}");
        for a in &alerts {
            let (s, b) = rerate_mail(&c, a, Level::Low, "", 9 * 3600);
            assert!(!s.contains(['\r', '\n']));
            no_forged_line(&b);
            let (s, b) = result_mail(&c, a, "結果", 9 * 3600);
            assert!(!s.contains(['\r', '\n']));
            no_forged_line(&b);
        }
    }
}
