//! The API's resources, discovered at run time, so the namespace and
//! garbage collectors cover every resource (CRDs included), not a fixed list.

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::Client;

#[derive(Debug, Clone)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Every preferred-version resource that can be listed and deleted.
pub async fn deletable_resources(client: &Client) -> Result<Vec<Resource>, kube::Error> {
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(d) => d,
        Err(_) => Discovery::new(client.clone()).run_aggregated().await?,
    };
    Ok(discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::DELETE))
        .map(|(ar, caps): (ApiResource, ApiCapabilities)| Resource {
            namespaced: caps.scope == Scope::Namespaced,
            verbs: caps.operations.clone(),
            ar,
        })
        .collect())
}
