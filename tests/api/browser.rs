//! One run through a real browser (Debian's chromium, driven through chromedriver): an
//! end user connects, an admin watches the grant die, makes a reconnect link, and the
//! user repairs the connection with it. A screenshot of each step is saved under
//! target/e2e-screenshots/.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use keyhaven::web::api::{EndUserInput, create_link_for};

use crate::helpers::*;

// Found by build.rs, which sets `cfg(chromium)` only when both are installed; without
// them the browser tests are reported as ignored (`apt-get install chromium
// chromium-driver`, then build again).
#[cfg(chromium)]
const CHROMEDRIVER: &str = env!("E2E_CHROMEDRIVER");
#[cfg(chromium)]
const CHROMIUM: &str = env!("E2E_CHROMIUM");
#[cfg(not(chromium))]
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
#[cfg(not(chromium))]
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(15);

/// chromedriver in its own process group; dropping it kills the whole group (killing
/// chromedriver alone would leave Chromium running) and removes the browser profile.
pub(crate) struct Driver {
    child: std::process::Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// chromedriver on a free port, ready for sessions.
pub(crate) async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let profile = std::env::temp_dir().join(format!("keyhaven-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // chromedriver says when it listens; its output is read to the end so that it never
    // blocks on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let (started, listening) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut started = Some(started);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("started successfully")
                && let Some(tell) = started.take()
            {
                let _ = tell.send(());
            }
        }
    });
    let driver = Driver {
        child,
        port,
        profile,
    };
    match tokio::time::timeout(Duration::from_secs(10), listening).await {
        Ok(Ok(())) => driver,
        _ => panic!("chromedriver did not start listening on port {port}"),
    }
}

pub(crate) async fn open_browser(driver: &Driver) -> Client {
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1024,768",
                format!("--user-data-dir={}", driver.profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromedriver session")
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    async fn take(&self, browser: &Client, name: &str) {
        let png = browser.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
    }
}

pub(crate) async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

pub(crate) async fn text_of(browser: &Client, css: &str) -> String {
    find(browser, css).await.text().await.unwrap()
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_string()
}

/// Approves on the sandbox's consent page and waits to be back on the connect page.
async fn approve_and_return(browser: &Client, app: &TestApp) {
    find(browser, "#approve").await.click().await.unwrap();
    find(browser, ".notice-ok").await;
    let url = browser.current_url().await.unwrap();
    assert!(url.as_str().starts_with(&app.url), "{url}");
    assert_eq!(url.path(), "/connect");
}

#[tokio::test]
#[cfg_attr(not(chromium), ignore = "needs chromium and chromedriver")]
async fn connect_watch_it_break_and_repair_it_with_a_reconnect_link_in_a_real_browser() {
    let driver = start_driver().await;
    let app = spawn_app().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let browser = open_browser(&driver).await;
    // The steps run in their own task so that a failed assertion still closes the
    // browser session before the test ends.
    let steps = tokio::spawn({
        let browser = browser.clone();
        async move { run(&app, &browser).await }
    });
    let result = steps.await;
    browser.close().await.unwrap();
    if let Err(failure) = result {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn run(app: &TestApp, browser: &Client) {
    let shots = Shots::new();
    let (link, _) = create_link_for(
        &app.state,
        &EndUserInput {
            external_id: "e2e-sam".into(),
            email: Some("sam@example.com".into()),
            name: Some("Sam Example".into()),
        },
    )
    .await
    .unwrap();

    // The end user opens the connect link: a page naming them, then Continue.
    browser.goto(&link).await.unwrap();
    assert_eq!(text_of(browser, "#link-user").await, "Sam Example");
    shots.take(browser, "00-link-continue").await;
    find(browser, "#continue").await.click().await.unwrap();
    // …and connects SmartRecruiters.
    find(browser, "#provider-smartrecruiters").await;
    assert_eq!(path_of(browser).await, "/connect");
    shots.take(browser, "01-connect-page").await;
    find(browser, "#provider-smartrecruiters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(browser, "#approve").await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&app.sandbox_url)
    );
    shots.take(browser, "02-sandbox-consent").await;
    approve_and_return(browser, app).await;
    let status = text_of(browser, "#provider-smartrecruiters .status").await;
    assert!(status.starts_with("Connected"), "{status}");
    shots.take(browser, "03-user-connected").await;

    // An admin signs in (anonymous visits land on the login form).
    browser.goto(&format!("{}/admin", app.url)).await.unwrap();
    find(browser, "input[name=password]").await;
    assert_eq!(path_of(browser).await, "/admin/login");
    find(browser, "input[name=email]")
        .await
        .send_keys(ADMIN_EMAIL)
        .await
        .unwrap();
    find(browser, "input[name=password]")
        .await
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    find(browser, "#sign-in").await.click().await.unwrap();
    find(browser, "#counts").await;
    assert_eq!(path_of(browser).await, "/admin");
    shots.take(browser, "04-admin-dashboard").await;

    // Finds the connection in the list and opens it.
    browser
        .find(Locator::LinkText("Connections"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    find(browser, "form.filters").await;
    find(browser, "input[name=q]")
        .await
        .send_keys("e2e-sam")
        .await
        .unwrap();
    find(browser, "form.filters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(browser, "#connection-list a.user").await;
    let rows = browser
        .find_all(Locator::Css("#connection-list tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        text_of(browser, "#connection-list a.user").await,
        "Sam Example"
    );
    shots.take(browser, "05-admin-connection-list").await;
    find(browser, "#connection-list a.user")
        .await
        .click()
        .await
        .unwrap();
    find(browser, "#refresh-now").await;
    assert_eq!(text_of(browser, "#status").await, "active");
    shots.take(browser, "06-admin-connection-detail").await;

    // The provider drops the grant; Refresh now finds out and says so.
    app.sandbox.revoke_user("smartrecruiters", "sam.sandbox");
    find(browser, "#refresh-now").await.click().await.unwrap();
    let outcome = text_of(browser, "#outcome").await;
    assert!(outcome.contains("needs reconnect"), "{outcome}");
    assert_eq!(text_of(browser, "#status").await, "needs reconnect");
    shots
        .take(browser, "07-admin-refresh-needs-reconnect")
        .await;

    // A reconnect link, shown once, with a working Copy button (our own script).
    find(browser, "#create-reconnect-link")
        .await
        .click()
        .await
        .unwrap();
    let field = find(browser, "#reconnect-url").await;
    let reconnect_url = field.prop("value").await.unwrap().unwrap_or_default();
    assert!(
        reconnect_url.starts_with(&format!("{}/c/", app.url)),
        "{reconnect_url}"
    );
    let copy = find(browser, "button[data-copy=reconnect-url]").await;
    assert!(
        copy.is_displayed().await.unwrap(),
        "the script revealed Copy"
    );
    shots.take(browser, "08-admin-reconnect-link").await;

    // The admin signs out; the user follows the link and reconnects.
    find(browser, "#logout").await.click().await.unwrap();
    find(browser, "#sign-in").await;
    assert_eq!(path_of(browser).await, "/admin/login");
    browser.goto(&reconnect_url).await.unwrap();
    find(browser, "#continue").await.click().await.unwrap();
    let status = text_of(browser, "#provider-smartrecruiters .status").await;
    assert!(status.starts_with("Needs reconnect"), "{status}");
    shots.take(browser, "09-user-reconnect-page").await;
    find(browser, "#provider-smartrecruiters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    approve_and_return(browser, app).await;
    let status = text_of(browser, "#provider-smartrecruiters .status").await;
    assert!(status.starts_with("Connected"), "{status}");
    shots.take(browser, "10-user-reconnected").await;

    let status: String = sqlx::query_scalar(
        "SELECT c.status FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = 'e2e-sam'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(status, "active");
}
