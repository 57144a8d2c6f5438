//! `--token-auth-file`: a CSV of `token,user,uid,"group1,group2"` (upstream's tokenfile).

use crate::auth::{AuthError, UserInfo};
use std::collections::HashMap;
use std::path::Path;

#[derive(Default, Debug)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

/// Splits one CSV line, honouring double quotes (`token,user,uid,"g1,g2"`).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

impl TokenFile {
    pub fn parse(text: &str, path: &str) -> Result<Self, AuthError> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f = csv_fields(line);
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                return Err(AuthError::TokenFile { path: path.into(), line: i + 1, message: "expected token,user,uid[,\"groups\"]".into() });
            }
            let groups = f.get(3).map(|g| g.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default();
            tokens.insert(f[0].clone(), UserInfo { name: f[1].clone(), uid: f[2].clone(), groups, ..Default::default() });
        }
        Ok(TokenFile { tokens })
    }

    pub fn read(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn get(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_with_quoted_groups() {
        let a = TokenFile::parse("# comment\nsecret,admin,uid1,\"system:masters,devs\"\nt2,bob,uid2\n", "f").unwrap();
        let u = a.get("secret").unwrap();
        assert_eq!(u.name, "admin");
        assert_eq!(u.groups, vec!["system:masters", "devs"]);
        assert!(a.get("t2").unwrap().groups.is_empty());
        assert!(TokenFile::parse("onlytoken\n", "f").is_err());
    }
}
