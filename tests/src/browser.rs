//! A real browser for the dashboard's tests: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) on a free loopback port with [`fantoccini`]. `scripts/test`
//! installs both (packages `chromium` and `chromium-driver`).
//!
//! Screenshots go to `<target>/ci-artifacts/screenshots/`, which CI keeps.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::{free_port, wait_for_port, ChildGuard};

/// How long [`Browser::wait_for`] and its kin wait unless told otherwise.
pub const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// Chromium's flags: headless, and none of its own network traffic (updates, sync, field
/// trials), which this machine's closed network refuses.
const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1200",
];

/// A headless chromium session; the browser and its driver stop when it is dropped.
pub struct Browser {
    client: fantoccini::Client,
    driver: ChildGuard,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    ///
    /// # Panics
    ///
    /// When chromium or chromedriver is missing (saying how to install them), or the session
    /// does not start.
    pub async fn start() -> Browser {
        let chromium = find_program(&["chromium", "chromium-browser"]);
        let chromedriver = find_program(&["chromedriver"]);
        let port = free_port();
        // Its own process group, so that dropping the browser ends chromium too (a
        // chromium left by a failed test would hold its memory until the machine stops).
        let driver = ChildGuard::spawn(
            Command::new(chromedriver)
                .process_group(0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_port(port, Duration::from_secs(20));
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver session.
    pub fn client(&self) -> &fantoccini::Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The first element matching `css`, once there is one (within [`BROWSER_WAIT`]).
    ///
    /// # Panics
    ///
    /// When none appears, with a screenshot saved as `missing`.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_text(css, "").await
    }

    /// The first element matching `css` whose text contains `text`, once there is one.
    ///
    /// # Panics
    ///
    /// When none appears within [`BROWSER_WAIT`], with a screenshot saved as `missing`.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> Element {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            for element in self.find_all(css).await {
                if element.text().await.is_ok_and(|t| t.contains(text)) {
                    return element;
                }
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("missing").await;
                panic!(
                    "no {css:?} containing {text:?} within {BROWSER_WAIT:?} (page saved in {})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until nothing matches `css`.
    ///
    /// # Panics
    ///
    /// When something still does after [`BROWSER_WAIT`].
    pub async fn wait_for_none(&self, css: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        while !self.find_all(css).await.is_empty() {
            if Instant::now() > deadline {
                let shot = self.screenshot("still-there").await;
                panic!(
                    "{css:?} still there after {BROWSER_WAIT:?} ({})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    /// Clicks the first element matching `css`, once there is one, scrolled to the middle of
    /// the window. The page re-renders its
    /// tables every two seconds, so an element found may be replaced before the click lands:
    /// then it is found again.
    pub async fn click(&self, css: &str) {
        let mut error = None;
        for _ in 0..10 {
            let element = self.wait_for(css).await;
            // To the middle of the window first: at its top, the page's sticky header
            // would take the click.
            let centre = "arguments[0].scrollIntoView({block: 'center'})";
            let arg = serde_json::to_value(&element).expect("an element serializes");
            let _ = self.client.execute(centre, vec![arg]).await;
            match element.click().await {
                Ok(()) => return,
                Err(e) => error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shot = self.screenshot("unclickable").await;
        panic!(
            "could not click {css:?}: {error:?} (page saved in {})",
            shot.display()
        );
    }

    /// Saves a screenshot of the page as `<name>.png` among the CI artifacts; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("cannot take a screenshot: {e}"));
        let dir = artifacts_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshots directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// Ends the session (dropping the browser also stops it, less politely).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

/// `<target>/ci-artifacts`: what a test leaves for people to look at (screenshots).
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test binary");
    let mut dir = exe.parent().expect("a parent dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.parent().expect("a target dir").join("ci-artifacts")
}

/// The first of `names` found on `PATH`.
fn find_program(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found on PATH: run scripts/test, which installs Debian's chromium and \
         chromium-driver (apt-get install chromium chromium-driver)",
        names.join(" or ")
    );
}
