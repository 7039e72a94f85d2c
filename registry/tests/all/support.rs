//! Test uploads and the moto server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use oberon_registry::model::{Cacheability, VersionMetadata};
use oberon_registry::{Resources, Upload, Version};

/// An upload of `component` at `version`; the registry does not run the module, so
/// any bytes do (deploy validation is the CLI's, tested there with real components).
pub fn upload(component: &str, version: &str) -> Upload {
    let wasm = Bytes::from(format!("\0asm {component} {version}").into_bytes());
    let mut assets = BTreeMap::new();
    assets.insert(
        "app.js".to_string(),
        Bytes::from(format!("console.log({version:?})").into_bytes()),
    );
    Upload {
        component: component.to_string(),
        version: Version::parse(version).expect("test version"),
        wasm,
        expected_wasm_sha256: None,
        assets,
        metadata: VersionMetadata {
            name: component.to_string(),
            subscribes: vec![],
            publishes: vec![],
            assets: vec!["app.js".into()],
            cacheability: Cacheability::Public,
        },
        wit: "0.1.0".into(),
        resources: Resources::default(),
    }
}

pub fn v(s: &str) -> Version {
    Version::parse(s).expect("test version")
}

/// A moto S3 server on a free loopback port, killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server not found: run the tests with `tests/run`, which installs it (tests/requirements.txt)");
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("moto_server exited before listening")
                .expect("read moto_server's output");
            if let Some(rest) = line.split("Running on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Moto { child, endpoint }
    }

    /// Create a bucket (moto accepts unsigned requests).
    pub async fn bucket(&self, name: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "create bucket {name}: {status}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
