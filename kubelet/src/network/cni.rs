//! CNI: network config generation (pure) and plugin execution per the CNI
//! spec (config on stdin, CNI_* environment, result on stdout).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin} failed: {message}")]
    Plugin { plugin: String, message: String },
    #[error("running CNI plugin {plugin}: {source}")]
    Exec {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI result has no IP address")]
    NoIp,
}

/// The node's pod network.
#[derive(Debug, Clone)]
pub struct CniConfig {
    pub bin_dir: PathBuf,
    pub bridge: String,
    pub pod_cidr: String,
    /// host-local's lease store.
    pub ipam_dir: PathBuf,
}

/// A hostPort → containerPort mapping for portmap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl CniConfig {
    /// The plugin chain: loopback is separate (it needs no IPAM or chaining).
    pub fn chain(&self, ports: &[PortMapping]) -> Vec<Value> {
        let mut chain = vec![json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            // Pod traffic stays on this machine: no masquerade.
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.pod_cidr}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.ipam_dir,
            }
        })];
        if !ports.is_empty() {
            chain.push(json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
                "runtimeConfig": {"portMappings": ports},
            }));
        }
        chain
    }

    /// The per-plugin config the CNI spec hands to plugin N of a list.
    pub fn plugin_config(&self, plugin: &Value, prev_result: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["cniVersion"] = json!(CNI_VERSION);
        conf["name"] = json!("ferrokube");
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev.clone();
        }
        conf
    }
}

/// Extracts the first IPv4 address (without prefix) from a CNI result.
pub fn result_ip(result: &Value) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?;
        let a = addr.split('/').next()?;
        a.parse::<std::net::Ipv4Addr>().ok().map(|_| a.to_string())
    })
}

/// Runs CNI plugins for pods.
#[derive(Debug, Clone)]
pub struct Cni {
    pub config: CniConfig,
}

impl Cni {
    async fn exec(
        &self,
        command: &str,
        id: &str,
        netns: &Path,
        conf: &Value,
    ) -> Result<Value, CniError> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_string();
        let mut child = tokio::process::Command::new(self.config.bin_dir.join(&plugin))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env(
                "CNI_IFNAME",
                if plugin == "loopback" { "lo" } else { "eth0" },
            )
            .env("CNI_PATH", &self.config.bin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CniError::Exec {
                plugin: plugin.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(conf).unwrap_or_default();
            stdin
                .write_all(&body)
                .await
                .map_err(|source| CniError::Exec {
                    plugin: plugin.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| CniError::Exec {
                plugin: plugin.clone(),
                source,
            })?;
        if !out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let message = match v["msg"].as_str() {
                Some(m) => format!("{m} {}", v["details"].as_str().unwrap_or_default()),
                None => String::from_utf8_lossy(&out.stderr).to_string(),
            };
            return Err(CniError::Plugin {
                plugin,
                message: message.trim().to_string(),
            });
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }

    /// ADD for loopback and the chain; returns the pod IP.
    pub async fn add(
        &self,
        id: &str,
        netns: &Path,
        ports: &[PortMapping],
    ) -> Result<String, CniError> {
        let lo = self
            .config
            .plugin_config(&json!({"type": "loopback"}), None);
        self.exec("ADD", id, netns, &lo).await?;
        let mut prev: Option<Value> = None;
        for p in self.config.chain(ports) {
            let conf = self.config.plugin_config(&p, prev.as_ref());
            let res = self.exec("ADD", id, netns, &conf).await?;
            prev = Some(res);
        }
        prev.as_ref().and_then(result_ip).ok_or(CniError::NoIp)
    }

    /// DEL in reverse order; releases the IP even when the netns is gone.
    pub async fn del(&self, id: &str, netns: &Path, ports: &[PortMapping]) -> Result<(), CniError> {
        let mut first_err = None;
        for p in self.config.chain(ports).iter().rev() {
            let conf = self.config.plugin_config(p, None);
            if let Err(e) = self.exec("DEL", id, netns, &conf).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CniConfig {
        CniConfig {
            bin_dir: "/usr/lib/cni".into(),
            bridge: "fk0-1".into(),
            pod_cidr: "10.88.1.0/24".into(),
            ipam_dir: "/var/lib/fk/ipam".into(),
        }
    }

    #[test]
    fn bridge_has_no_masquerade_and_uses_pod_cidr() {
        let chain = cfg().chain(&[]);
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0]["ipMasq"], json!(false));
        assert_eq!(chain[0]["bridge"], json!("fk0-1"));
        assert_eq!(
            chain[0]["ipam"]["ranges"][0][0]["subnet"],
            json!("10.88.1.0/24")
        );
    }

    #[test]
    fn host_ports_add_portmap_with_runtime_config() {
        let ports = vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        let chain = cfg().chain(&ports);
        assert_eq!(chain[1]["type"], json!("portmap"));
        assert_eq!(
            chain[1]["runtimeConfig"]["portMappings"][0]["hostPort"],
            json!(8080)
        );
        assert_eq!(
            chain[1]["runtimeConfig"]["portMappings"][0]["containerPort"],
            json!(80)
        );
    }

    #[test]
    fn plugin_config_carries_version_name_and_prev_result() {
        let prev = json!({"ips": [{"address": "10.88.1.2/24"}]});
        let c = cfg().plugin_config(&json!({"type": "portmap"}), Some(&prev));
        assert_eq!(c["cniVersion"], json!(CNI_VERSION));
        assert_eq!(c["name"], json!("ferrokube"));
        assert_eq!(result_ip(&c["prevResult"]).as_deref(), Some("10.88.1.2"));
    }

    #[test]
    fn result_without_ipv4_has_no_ip() {
        assert_eq!(result_ip(&json!({"ips": []})), None);
        assert_eq!(result_ip(&json!({})), None);
    }
}
