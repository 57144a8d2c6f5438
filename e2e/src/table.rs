//! Reading kubectl's human-readable tables by column name. Columns are
//! located by the header's offsets, since cells (OS-IMAGE) may hold spaces.

/// Rows of a kubectl table as (column name, cell) maps.
pub fn parse(output: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut prev_space = true;
    for (i, ch) in header.char_indices() {
        if ch != ' ' && prev_space {
            let name: String = header[i..]
                .split("   ")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            // A header may itself hold one space ("NOMINATED NODE").
            if starts.last().map(|(s, n)| i < s + n.len()).unwrap_or(false) {
                prev_space = ch == ' ';
                continue;
            }
            starts.push((i, name));
        }
        prev_space = ch == ' ';
    }
    lines
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(k, (start, name))| {
                    let end = starts.get(k + 1).map(|(s, _)| *s).unwrap_or(usize::MAX);
                    let cell = line
                        .get(*start..end.min(line.len()))
                        .or_else(|| line.get(*start..))
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    (name.clone(), cell)
                })
                .collect()
        })
        .collect()
}

/// The cell of `column` in `row`.
pub fn cell<'a>(row: &'a [(String, String)], column: &str) -> &'a str {
    row.iter()
        .find(|(n, _)| n == column)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_node_table_cells_may_hold_spaces() {
        let out = "\
NAME     STATUS   ROLES    AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION   CONTAINER-RUNTIME
node-0   Ready    <none>   10s   v1.33.0   127.0.0.1     <none>        Debian GNU/Linux 12 (bookworm)   6.1.0            containerd://1.6.20~ds1
";
        let rows = parse(out);
        assert_eq!(rows.len(), 1);
        assert_eq!(cell(&rows[0], "NAME"), "node-0");
        assert_eq!(cell(&rows[0], "INTERNAL-IP"), "127.0.0.1");
        assert_eq!(cell(&rows[0], "OS-IMAGE"), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(
            cell(&rows[0], "CONTAINER-RUNTIME"),
            "containerd://1.6.20~ds1"
        );
    }

    #[test]
    fn two_word_headers_stay_one_column() {
        let out = "\
NAME   READY   STATUS    RESTARTS   AGE   IP          NODE     NOMINATED NODE   READINESS GATES
web    1/1     Running   0          5s    10.88.0.2   node-0   <none>           <none>
";
        let rows = parse(out);
        assert_eq!(cell(&rows[0], "NOMINATED NODE"), "<none>");
        assert_eq!(cell(&rows[0], "NODE"), "node-0");
        assert_eq!(cell(&rows[0], "READINESS GATES"), "<none>");
    }
}
