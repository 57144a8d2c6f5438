//! `/etc/resolv.conf` as upstream's kubelet reads the host's one
//! (`parseResolvConf` in pkg/kubelet/network/dns): the kubelet builds pods'
//! resolv.conf from it, and the cluster DNS server forwards to its nameservers.

/// The parts of a resolv.conf that matter to pods and forwarders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The last `search` line's domains, without trailing dots (`.` dropped).
    pub searches: Vec<String>,
    /// `options`, a later option of the same name replacing an earlier one.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses a resolv.conf; unknown lines are ignored, as the resolver does.
    pub fn parse(text: &str) -> ResolvConf {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            // '#' and ';' start comments, anywhere on the line.
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["nameserver", ns, ..] => out.nameservers.push(ns.to_string()),
                ["search", domains @ ..] => {
                    // Each search line replaces the previous one.
                    out.searches = domains
                        .iter()
                        .filter(|d| **d != ".")
                        .map(|d| d.trim_end_matches('.').to_string())
                        .collect();
                }
                ["options", opts @ ..] => {
                    out.options = merge_options(&out.options, opts.iter().map(|s| s.to_string()));
                }
                _ => {}
            }
        }
        out
    }

    /// Reads and parses `path`; a missing file is an empty configuration.
    pub fn read(path: &std::path::Path) -> std::io::Result<ResolvConf> {
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(ResolvConf::parse(&s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ResolvConf::default()),
            Err(e) => Err(e),
        }
    }
}

/// Appends `new` options to `base`; an option whose name (the part before
/// `:`) is already there replaces it in place, as upstream's appendOptions.
pub fn merge_options(base: &[String], new: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for opt in new {
        let name = opt.split(':').next().unwrap_or_default().to_string();
        match out
            .iter_mut()
            .find(|o| o.split(':').next().unwrap_or_default() == name)
        {
            Some(o) => *o = opt,
            None => out.push(opt),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_last_search_and_merged_options() {
        let r = ResolvConf::parse(
            "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3 ; second\n\
             search old.example\nsearch corp.example. . lab.example\n\
             options ndots:2 timeout:1\noptions ndots:3 rotate\ndomain ignored\n",
        );
        assert_eq!(r.nameservers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(r.searches, ["corp.example", "lab.example"]);
        assert_eq!(r.options, ["ndots:3", "timeout:1", "rotate"]);
    }

    #[test]
    fn empty_and_garbage_give_nothing() {
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
        assert_eq!(ResolvConf::parse("nameserver\nsearchx a\n"), ResolvConf::default());
    }
}
