//! Deploy validation: what must hold before a module goes into the registry.
//!
//! It lives here, in the deployer, because it needs the wasmtime host: the registry
//! crate stays free of wasmtime, and the renderer's engine is used as the renderers
//! themselves use it, so a module that passes here is one they can load.
//!
//! In order, cheapest first: the contract version the module imports (read from its
//! import names, so a module for another contract is told so rather than getting a
//! linker error), loading it (compile, link, `describe`, metadata checks), and a test
//! render in a fresh instance with an empty bus, which must not trap or time out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oberon_registry::model::{Cacheability as RegistryCacheability, VersionMetadata};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::{
    Cacheability, ComponentMetadata, RequestContext, WIT_LATEST, WIT_VERSIONS,
};
use oberon_renderer::engine::{Budget, ComponentEngine, ComponentError, EngineLimits, LoadError};

/// How long the test render may take.
pub const TEST_RENDER_DEADLINE: Duration = Duration::from_secs(2);

const CONTRACT: &str = "oberon:component";

#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("not a WebAssembly component: {0}; build it with `oberon component build`")]
    NotAComponent(String),
    #[error(
        "built against {CONTRACT}@{found}, but renderers serve {supported}; rebuild it with an oberon-sdk for {CONTRACT}@{WIT_LATEST}"
    )]
    WrongWitVersion { found: String, supported: String },
    #[error(
        "imports {CONTRACT}@{0} and {CONTRACT}@{1}: a component is built against one version; rebuild it with an oberon-sdk for {CONTRACT}@{WIT_LATEST}"
    )]
    MixedWitVersions(String, String),
    #[error(
        "imports no {CONTRACT} interface, so it was not built with the Oberon SDK; build it against {CONTRACT}@{WIT_LATEST}"
    )]
    NoContract,
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("test props must be a JSON object, e.g. '{{\"who\":\"me\"}}': {0}")]
    TestProps(String),
    #[error("the test render (props {props}, empty bus) failed: {source}")]
    TestRender {
        props: String,
        #[source]
        source: ComponentError,
    },
}

/// What validation learned about a module.
#[derive(Debug, Clone)]
pub struct Validated {
    pub metadata: VersionMetadata,
    /// The contract version it was built against.
    pub wit: String,
    /// The test render's error, when `render` returned `Err` (not a trap): the slot
    /// would show its fallback. Reported, not refused: a component may need props or
    /// bus values that an empty test render does not give.
    pub render_error: Option<String>,
    pub render_time: Duration,
}

/// The `oberon:component` version `wasm` imports, from its top-level import names.
pub fn contract_version(wasm: &[u8]) -> Result<String, ValidationError> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut depth = 0usize;
    let mut versions: Vec<String> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ValidationError::NotAComponent(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err(ValidationError::NotAComponent(
                    "it is a core module, not a component".into(),
                ));
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import =
                        import.map_err(|e| ValidationError::NotAComponent(e.to_string()))?;
                    let name = import.name.name;
                    if let Some(rest) = name
                        .strip_prefix(CONTRACT)
                        .and_then(|r| r.strip_prefix('/'))
                        && let Some((_, version)) = rest.split_once('@')
                        && !versions.iter().any(|v| v == version)
                    {
                        versions.push(version.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(found) = versions
        .iter()
        .find(|v| !WIT_VERSIONS.contains(&v.as_str()))
    {
        return Err(ValidationError::WrongWitVersion {
            found: found.clone(),
            supported: WIT_VERSIONS
                .iter()
                .map(|v| format!("{CONTRACT}@{v}"))
                .collect::<Vec<_>>()
                .join(" and "),
        });
    }
    match versions.as_slice() {
        [] => Err(ValidationError::NoContract),
        [one] => Ok(one.clone()),
        [first, second, ..] => Err(ValidationError::MixedWitVersions(
            first.clone(),
            second.clone(),
        )),
    }
}

/// A wasmtime engine for validation: a few instances are plenty, and any memory a
/// deploy may ask for (a site's ceiling is the renderer's to hold it to).
pub fn engine() -> anyhow::Result<ComponentEngine> {
    ComponentEngine::new(EngineLimits {
        max_instances: 4,
        memory_ceiling_bytes: 4096 << 20,
        ..EngineLimits::default()
    })
}

/// Check `wasm` as a deploy must: contract version, load, test render with `props`
/// in an instance with the memory the deploy asks for (`memory_mib`; the default cap
/// without).
pub async fn validate(
    engine: &ComponentEngine,
    wasm: &[u8],
    props: &str,
    memory_mib: Option<u32>,
) -> Result<Validated, ValidationError> {
    match serde_json::from_str::<serde_json::Value>(props) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err(ValidationError::TestProps("not an object".into())),
        Err(e) => return Err(ValidationError::TestProps(e.to_string())),
    }
    let wit = contract_version(wasm)?;
    let loaded = engine.load(wasm).await?;
    let ctx = RequestContext {
        path: "/".into(),
        params: vec![],
        query: vec![],
        locale: "en".into(),
        user: None,
        request_id: Arc::from("oberon-deploy-validation"),
    };
    let bus = Arc::new(BusSnapshot::default());
    let result = engine
        .render(
            &loaded,
            &ctx,
            props,
            &bus,
            Budget {
                deadline: Instant::now() + TEST_RENDER_DEADLINE,
                memory_bytes: memory_mib
                    .map_or(engine.limits().memory_bytes, |m| (m as usize) << 20),
            },
        )
        .await;
    let render_error = match result.outcome {
        Ok(_) => None,
        Err(ComponentError::Guest { message, .. }) => Some(message),
        Err(source) => {
            return Err(ValidationError::TestRender {
                props: props.to_string(),
                source,
            });
        }
    };
    Ok(Validated {
        metadata: registry_metadata(loaded.metadata()),
        wit,
        render_error,
        render_time: result.elapsed,
    })
}

fn registry_metadata(m: &ComponentMetadata) -> VersionMetadata {
    VersionMetadata {
        name: m.name.to_string(),
        subscribes: m.subscribes.iter().map(|t| t.to_string()).collect(),
        publishes: m.publishes.iter().map(|t| t.to_string()).collect(),
        assets: m.assets.clone(),
        cacheability: match m.cacheability {
            Cacheability::Public => RegistryCacheability::Public,
            Cacheability::Volatile => RegistryCacheability::Volatile,
            Cacheability::Personal => RegistryCacheability::Personal,
        },
    }
}
