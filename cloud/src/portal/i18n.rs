//! The portal's words in Japanese (default) and English. One table: a missing translation
//! is a compile error, not a blank on a page.

use crate::score::Level;

macro_rules! texts {
    ($($key:ident : $ja:expr , $en:expr ;)*) => {
        /// Every text of the portal in one language.
        pub struct Tr {
            /// `ja` or `en` (the `lang` attribute).
            pub lang: &'static str,
            $(pub $key: &'static str,)*
        }
        pub const JA: Tr = Tr { lang: "ja", $($key: $ja,)* };
        pub const EN: Tr = Tr { lang: "en", $($key: $en,)* };
    };
}

texts! {
    product: "Mimamori 見守りポータル", "Mimamori Portal";
    other_lang: "English", "日本語";
    other_lang_code: "en", "ja";
    nav_dashboard: "ダッシュボード", "Dashboard";
    nav_alerts: "アラート", "Alerts";
    nav_traffic: "通信記録", "Traffic record";
    nav_appliances: "機器", "Appliances";
    nav_addresses: "通知先", "Notification addresses";
    nav_notices: "メンテナンス情報", "Maintenance notices";
    nav_account: "アカウント", "Account";
    logout: "ログアウト", "Log out";
    login_title: "ログイン", "Log in";
    email: "メールアドレス", "E-mail address";
    password: "パスワード", "Password";
    login_button: "ログイン", "Log in";
    login_failed: "メールアドレスまたはパスワードが正しくありません。", "Wrong e-mail address or password.";
    locked: "ログインの失敗が続いたため、アカウントを15分間ロックしました。しばらくしてから再度お試しください。", "Too many failed attempts: the account is locked for 15 minutes. Please try again later.";
    code_locked: "認証コードの誤りが続いたため、このアカウントのログインをロックしています（正しいパスワードでも解除されません）。時間をおいて再度お試しいただくか、担当窓口にリセットをご依頼ください。", "Too many wrong codes: logins to this account are locked (a correct password does not unlock them). Try again later, or ask us to reset the account.";
    temp_expired: "仮パスワードの有効期限（72時間）が切れました。担当窓口に再発行をご依頼ください。", "The temporary password has expired (72 hours). Ask us for a new one.";
    csrf_refused: "フォームの有効期限が切れたか、不正な送信です。ページを再読み込みしてからやり直してください。", "The form has expired or the request was forged. Reload the page and try again.";
    busy: "ただいま混み合っています。少し待ってから再度お試しください。", "The portal is busy. Please try again in a moment.";
    test_wait: "テストメールは5分に1回まで送信できます。", "A test mail can be sent once every 5 minutes.";
    not_found: "ページが見つかりません", "Page not found";
    not_found_text: "お探しのページは存在しないか、表示する権限がありません。", "The page does not exist or you may not see it.";
    error_title: "エラーが発生しました", "Something went wrong";
    error_text: "時間をおいて再度お試しください。解決しない場合はサポート窓口までご連絡ください。", "Please try again later. If it persists, contact support.";
    back_to_dashboard: "ダッシュボードへ戻る", "Back to the dashboard";
    totp_title: "二要素認証", "Two-factor authentication";
    totp_prompt: "認証アプリに表示されている6桁のコードを入力してください。", "Enter the 6-digit code shown by your authenticator app.";
    totp_code: "確認コード", "Verification code";
    totp_or_recovery: "認証アプリが使えない場合は、リカバリーコードを入力できます。", "If you cannot use the app, enter one of your recovery codes instead.";
    totp_wrong: "コードが正しくありません。", "The code is not correct.";
    verify: "確認", "Verify";
    change_title: "新しいパスワードの設定", "Choose a new password";
    change_forced: "仮パスワードでログインしました。続けるには新しいパスワードを設定してください。", "You logged in with a temporary password. Choose a new password to continue.";
    current_password: "現在のパスワード", "Current password";
    new_password: "新しいパスワード", "New password";
    new_password_again: "新しいパスワード（確認）", "New password (again)";
    password_rules: "10文字以上。メールアドレスや推測されやすい語は使えません。", "At least 10 characters; not your e-mail address or a common password.";
    password_mismatch: "確認用のパスワードが一致しません。", "The two new passwords differ.";
    password_same: "仮パスワードと同じパスワードは使えません。", "The new password must differ from the old one.";
    current_wrong: "現在のパスワードが正しくありません。", "The current password is not correct.";
    password_changed: "パスワードを変更しました。", "Your password was changed.";
    save: "保存", "Save";
    enroll_title: "認証アプリの登録", "Set up your authenticator app";
    enroll_text: "Google Authenticator、Microsoft Authenticator などの認証アプリでQRコードを読み取り、表示された6桁のコードを入力してください。", "Scan the QR code with an authenticator app (Google Authenticator, Microsoft Authenticator, ...) and enter the 6-digit code it shows.";
    enroll_manual: "QRコードを読み取れない場合は、次のキーを手入力してください", "If you cannot scan the code, type this key";
    recovery_title: "リカバリーコード", "Recovery codes";
    recovery_text: "認証アプリを使えなくなったときのためのコードです。各コードは1回だけ使えます。印刷するか安全な場所に保管してください。この画面は一度しか表示されません。", "Use these if you lose your authenticator app. Each works once. Print them or keep them somewhere safe: they are shown only now.";
    recovery_done: "保管しました。続ける", "I have kept them — continue";
    recovery_new: "リカバリーコードを再発行", "Issue new recovery codes";
    recovery_left: "残りのリカバリーコード", "Recovery codes left";
    mfa_on: "二要素認証: 有効", "Two-factor authentication: on";
    dashboard_title: "ダッシュボード", "Dashboard";
    appliances_state: "機器の状態", "Appliances";
    online: "稼働中", "Online";
    offline: "停止", "Offline";
    pending: "未開通", "Not activated";
    revoked: "無効", "Revoked";
    last_heartbeat: "最終受信", "Last heartbeat";
    never: "未受信", "never";
    alerts_30d: "過去30日間のアラート（重要度別）", "Alerts of the last 30 days by level";
    top_categories: "よく使われたWebカテゴリ（7日間）", "Top web categories (7 days)";
    top_apps: "よく使われたアプリ（7日間）", "Top applications (7 days)";
    recent_alerts: "最近の重要アラート", "Recent important alerts";
    no_data: "データはまだありません。", "No data yet.";
    see_all: "すべて表示", "See all";
    alerts_title: "アラート一覧", "Alerts";
    level: "重要度", "Level";
    all: "すべて", "All";
    date_from: "開始日", "From";
    date_to: "終了日", "To";
    appliance: "機器", "Appliance";
    host: "社内端末（IP/MAC）", "Internal host (IP/MAC)";
    filter: "絞り込み", "Filter";
    clear: "解除", "Clear";
    time: "日時", "Time";
    threat: "検知内容", "Detection";
    action_taken: "処置", "Action";
    count_of: "件", "alerts";
    prev: "前へ", "Previous";
    next: "次へ", "Next";
    page: "ページ", "Page";
    bad_date: "日付は YYYY-MM-DD の形式で入力してください。", "Enter dates as YYYY-MM-DD.";
    bad_host: "社内端末は IP アドレス（例 198.18.0.10）か MAC アドレス（例 02:00:5e:00:53:01）で入力してください。", "Enter the host as an IP address (198.18.0.10) or a MAC address (02:00:5e:00:53:01).";
    alert_title: "アラート詳細", "Alert detail";
    reason: "この重要度の理由", "Why this level";
    what_detected: "検知した内容", "What was detected";
    todo: "お客様に実施いただく対応", "What you should do";
    internal_host: "社内端末", "Internal host";
    remote: "通信相手", "Remote end";
    site: "URL / SNI / ドメイン", "URL / SNI / domain";
    direction: "方向", "Direction";
    signature: "シグネチャ", "Signature";
    file: "ファイル", "File";
    status: "状態", "Status";
    history: "経緯", "History";
    alert_no: "アラート番号", "Alert number";
    traffic_title: "通信記録", "Traffic record";
    period: "期間", "Period";
    day1: "24時間", "24 hours";
    day7: "7日間", "7 days";
    day30: "30日間", "30 days";
    by_category: "Webカテゴリ別", "By web category";
    by_app: "アプリ別", "By application";
    by_host: "端末別", "By host";
    bytes: "通信量", "Volume";
    flows: "接続数", "Connections";
    category: "カテゴリ", "Category";
    app: "アプリ", "Application";
    unknown: "不明", "unknown";
    appliances_title: "機器一覧", "Appliances";
    name: "名前", "Name";
    firmware: "ファームウェア", "Firmware";
    rules_version: "ルール版", "Rule version";
    last_contact: "最終通信", "Last contact";
    activated: "開通日時", "Activated";
    device_id: "機器ID", "Appliance ID";
    addresses_title: "通知先メールアドレス", "Notification addresses";
    addresses_text: "重要なアラートと機器停止のお知らせを送るアドレスです（最大3件）。", "Important alerts and stop notices are mailed here (at most 3).";
    add: "追加", "Add";
    remove: "削除", "Remove";
    send_test: "テストメールを送信", "Send a test mail";
    test_sent: "テストメールを送信しました。届かない場合は迷惑メールフォルダもご確認ください。", "Test mails are on their way. If none arrives, check the spam folder.";
    address_added: "通知先を追加しました。", "The address was added.";
    address_removed: "通知先を削除しました。", "The address was removed.";
    isolation_title: "端末の隔離（論理的な抜線）", "Host isolation (logical unplug)";
    isolation_text: "隔離すると、この端末は許可された宛先（DNS など）以外と通信できなくなります。感染が疑われる端末の被害拡大を防ぎます。", "An isolated host can reach nothing but the allowed destinations (such as DNS). It stops a suspected infection from spreading.";
    isolate_button: "この端末を隔離する", "Isolate this host";
    release_button: "隔離を解除する", "Release this host";
    isolated_now: "隔離中", "Isolated";
    not_isolated: "隔離されていません", "Not isolated";
    isolate_requested: "隔離を機器に指示しました。", "The appliance was told to isolate the host.";
    release_requested: "隔離の解除を機器に指示しました。", "The appliance was told to release the host.";
    commands_title: "機器への指示", "Commands to the appliance";
    isolated_hosts: "隔離中の端末", "Isolated hosts";
    inspection_counters: "検査の負荷 (起動以降のフレーム数)", "Inspection load (frames since start)";
    cmd_pending: "送信待ち（機器の接続を待っています）", "Waiting for the appliance to connect";
    cmd_sent: "送信済み（応答待ち）", "Sent, awaiting the answer";
    cmd_done: "実施済み", "Carried out";
    cmd_failed: "失敗", "Failed";
    address_max: "通知先は3件までです。追加するには、先に既存の通知先を削除してください。", "At most 3 notification addresses. Remove one before adding another.";
    address_invalid: "メールアドレスの形式が正しくありません", "This is not a valid e-mail address";
    address_dup: "このアドレスは登録済みです", "This address is already registered";
    address_none: "通知先が登録されていません。アラートがメールで届きません。", "No notification address: alerts are not mailed.";
    notices_title: "メンテナンス情報", "Maintenance notices";
    emergency: "緊急", "Emergency";
    period_of_work: "作業日時", "When";
    account_title: "アカウント", "Account";
    change_password: "パスワードの変更", "Change password";
    users_of_contract: "このご契約のポータル利用者", "Portal users of this contract";
    contract: "ご契約", "Contract";
    lang_label: "言語", "Language";
    activity_title: "操作履歴", "Activity";
    activity_intro: "このご契約に対する変更とログインの記録です（新しい順、最大200件）。", "Changes to this contract and logins, newest first (at most 200).";
    activity_link: "操作履歴を見る", "See the activity log";
    activity_time: "日時", "Time";
    activity_actor: "操作者", "By";
    activity_addr: "接続元", "From";
    activity_action: "操作", "Action";
    activity_target: "対象", "Target";
    activity_change: "変更内容", "Change";
}

impl Tr {
    pub fn level(&self, l: Level) -> &'static str {
        if self.lang == "ja" {
            return l.label_ja();
        }
        match l {
            Level::High => "★★★ high",
            Level::Medium => "★★☆ medium",
            Level::Low => "★☆☆ low",
            Level::Investigating => "under investigation",
            Level::Info => "for information",
        }
    }
    pub fn actions(&self, l: Level) -> &'static str {
        if self.lang == "ja" {
            return l.actions_ja();
        }
        match l {
            Level::High => {
                "An infection is likely. Disconnect the host from the network at once (unplug the cable / turn Wi-Fi off), run a full anti-virus scan and tell us the result."
            }
            Level::Medium => "An infection is possible. Run a full anti-virus scan on the host.",
            Level::Low => "An infection is unlikely. Be careful with suspicious mails and sites.",
            Level::Investigating => {
                "We are investigating and will tell you the result. Nothing to do for now."
            }
            Level::Info => "Nothing to do.",
        }
    }
    pub fn action(&self, a: protocol::messages::Action) -> &'static str {
        use protocol::messages::Action::*;
        let ja = self.lang == "ja";
        match a {
            Allowed => {
                if ja {
                    "通過（検知のみ）"
                } else {
                    "passed (detected only)"
                }
            }
            Blocked => {
                if ja {
                    "遮断"
                } else {
                    "blocked"
                }
            }
            Disarmed => {
                if ja {
                    "無害化（ファイルを遮断）"
                } else {
                    "disarmed (file blocked)"
                }
            }
            Reset => {
                if ja {
                    "通信を切断"
                } else {
                    "connection reset"
                }
            }
        }
    }
    pub fn direction(&self, d: protocol::messages::Direction) -> &'static str {
        use protocol::messages::Direction::*;
        let ja = self.lang == "ja";
        match d {
            Outbound => {
                if ja {
                    "社内→社外"
                } else {
                    "outbound"
                }
            }
            Inbound => {
                if ja {
                    "社外→社内"
                } else {
                    "inbound"
                }
            }
            Internal => {
                if ja {
                    "社内→社内"
                } else {
                    "internal"
                }
            }
        }
    }
    /// Where a command to the appliance stands.
    pub fn command_state(&self, s: crate::store::CommandState) -> &'static str {
        use crate::store::CommandState as S;
        match s {
            S::Pending => self.cmd_pending,
            S::Sent => self.cmd_sent,
            S::Done => self.cmd_done,
            S::Failed => self.cmd_failed,
        }
    }

    pub fn status(&self, s: crate::store::AlertStatus) -> &'static str {
        let ja = self.lang == "ja";
        match s {
            crate::store::AlertStatus::Open => {
                if ja {
                    "対応中"
                } else {
                    "open"
                }
            }
            crate::store::AlertStatus::Resolved => {
                if ja {
                    "調査完了"
                } else {
                    "resolved"
                }
            }
        }
    }
}

/// The texts for a `lang` cookie value (Japanese unless it says `en`).
pub fn tr(lang: Option<&str>) -> &'static Tr {
    match lang {
        Some("en") => &EN,
        _ => &JA,
    }
}
