//! Cases from upstream's pkg/labels selector semantics and
//! LabelSelectorAsSelector.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn string_syntax_and_matching() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("cores", "8")]);
    for (s, want) in [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app!=web", false),
        ("app in (web,db)", true),
        ("app notin (web)", false),
        ("app notin(db)", true),
        ("tier", true),
        ("!tier", false),
        ("!missing", true),
        ("missing!=x", true, ),
        ("missing notin (x)", true),
        ("missing in (x)", false),
        ("app=web,tier=back", false),
        ("app in (db), tier", false),
        ("cores>4", true),
        ("cores<4", false),
        ("tier>4", false),
        ("missing=", false),
        ("  app = web ,  tier  ", true),
    ] {
        assert_eq!(sel(s).matches(&l), want, "{s:?}");
    }
}

#[test]
fn empty_value_matches_an_empty_label() {
    let l = labels(&[("x", "")]);
    assert!(sel("x=").matches(&l));
    assert!(sel("x in (a,)").matches(&l), "a trailing comma adds the empty value");
    assert!(!sel("x=").matches(&labels(&[])));
}

#[test]
fn invalid_selectors() {
    for s in [
        "x=a||y=b",
        "x==a==b",
        "!x=a",
        "x<a",
        "x>1.5",
        "x in ()",
        "x in a",
        "x in (",
        "a=b,",
        ",",
        "=x",
        "x/y/z=1",
        "-x=1",
        "\u{1F600}=1",
        "x=a b",
        "x=\u{1F600}",
    ] {
        assert!(Selector::parse(s).is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn keys_and_values_are_validated() {
    assert!(validate_key("app.kubernetes.io/name").is_ok());
    assert!(validate_key("a_b.c-d").is_ok());
    assert!(validate_key("Example.com/x").is_err(), "prefix is lowercase");
    assert!(validate_key("/x").is_err());
    assert!(validate_key(&"a".repeat(64)).is_err());
    assert!(validate_value("").is_ok());
    assert!(validate_value(&"a".repeat(63)).is_ok());
    assert!(validate_value(&"a".repeat(64)).is_err());
    assert!(validate_value("-a").is_err());
}

#[test]
fn printed_form_sorts_by_key() {
    assert_eq!(sel("z=1,a in (y,x),!m,k").to_string(), "a in (x,y),k,!m,z=1");
    assert_eq!(sel("a!=b,c>3").to_string(), "a!=b,c>3");
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn label_selector_objects() {
    let ls = LabelSelector {
        match_labels: Some(labels(&[("app", "web")])),
        match_expressions: Some(vec![expr("tier", "NotIn", &["db"])]),
    };
    let web = labels(&[("app", "web")]);
    let db = labels(&[("app", "web"), ("tier", "db")]);
    assert_eq!(label_selector_matches(&ls, &web), Ok(true));
    assert_eq!(label_selector_matches(&ls, &db), Ok(false));
    assert_eq!(label_selector_matches(&ls, &None::<&BTreeMap<String, String>>), Ok(false));
    let s = Selector::from_label_selector(&ls).unwrap();
    assert!(s.matches(&web) && !s.matches(&db));
    assert_eq!(s.to_string(), "app=web,tier notin (db)");
}

#[test]
fn missing_selector_selects_nothing_empty_selects_everything() {
    let l = labels(&[("a", "b")]);
    assert!(!label_selector_as_selector(None).unwrap().matches(&l));
    assert!(!label_selector_as_selector(None).unwrap().is_empty());
    let empty = label_selector_as_selector(Some(&LabelSelector::default())).unwrap();
    assert!(empty.is_empty() && empty.matches(&l) && empty.matches(&labels(&[])));
}

#[test]
fn bad_operators_and_value_counts_are_errors() {
    let near = LabelSelector { match_expressions: Some(vec![expr("a", "Near", &[])]), ..Default::default() };
    assert_eq!(label_selector_matches(&near, &labels(&[])), Err(SelectorError::Operator("Near".into())));
    let in_empty = LabelSelector { match_expressions: Some(vec![expr("a", "In", &[])]), ..Default::default() };
    assert!(label_selector_matches(&in_empty, &labels(&[])).is_err());
    let exists_values = LabelSelector { match_expressions: Some(vec![expr("a", "Exists", &["x"])]), ..Default::default() };
    assert!(Selector::from_label_selector(&exists_values).is_err());
    let bad_key = LabelSelector { match_labels: Some(labels(&[("a b", "x")])), ..Default::default() };
    assert!(Selector::from_label_selector(&bad_key).is_err());
}

#[test]
fn sets_and_json_labels() {
    let set = labels(&[("app", "web")]);
    assert!(set_matches(&set, &labels(&[("app", "web"), ("x", "y")])));
    assert!(!set_matches(&set, &None::<&BTreeMap<String, String>>));
    assert!(set_matches(&BTreeMap::new(), &labels(&[])));
    assert!(Selector::from_set(&set).matches(&labels(&[("app", "web")])));
    let json = serde_json::json!({"app": "web", "n": 1});
    let map = json.as_object().unwrap();
    assert!(sel("app=web,!n2").matches(map));
    assert!(!sel("n=1").matches(map), "a non-string label is no label");
}
