//! The PersistentVolume controller (upstream's pkg/controller/volume/persistentvolume,
//! "persistentvolume-binder-controller"): binds claims to volumes, hands
//! claims of a provisioning class to their provisioner, and keeps the
//! phases (claims Pending/Bound/Lost, volumes Available/Bound/Released/Failed).
//! The decisions are pure ([`binder::plan_claim`], [`reclaim::plan_volume`]);
//! this module writes them, one worker per queue as upstream.

pub mod binder;
pub mod reclaim;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::volume::{self, ANN_BETA_STORAGE_PROVISIONER, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER};
use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use self::binder::{ClaimAction, Note};
use self::reclaim::VolumeAction;
use crate::controllers::{is_not_found, timed, Ctx, Result};
use crate::events::Recorder;
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "persistentvolume-binder-controller";

struct State {
    ctx: Ctx,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    recorder: Recorder,
    /// The last event written per object uid: a claim re-synced while it
    /// waits says why once, not on every sync.
    last_note: Mutex<HashMap<String, Note>>,
}

fn unbound(c: &PersistentVolumeClaim) -> bool {
    !c.annotations().contains_key(volume::ANN_BIND_COMPLETED)
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let claim_q: WorkQueue<Key> = WorkQueue::default();
    let volume_q: WorkQueue<Key> = WorkQueue::default();
    let claims = inf.store::<PersistentVolumeClaim>();
    let volumes = inf.store::<PersistentVolume>();
    {
        let (cq, vq, vols) = (claim_q.clone(), volume_q.clone(), volumes.clone());
        inf.get::<PersistentVolumeClaim>().on_change(move |old, new| {
            let Some(c) = new.or(old) else { return };
            cq.add(Key::of(c.meta()));
            // The volume it names, and any volume whose claimRef names it
            // (a deleted claim releases its volume).
            for c in [old, new].into_iter().flatten() {
                if let Some(v) = c.spec.as_ref().and_then(|s| s.volume_name.as_deref()).filter(|v| !v.is_empty()) {
                    vq.add(Key::cluster(v));
                }
            }
            for v in vols.state() {
                let r = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                if r.is_some_and(|r| r.name == c.metadata.name && r.namespace == c.metadata.namespace) {
                    vq.add(Key::cluster(&v.name_any()));
                }
            }
        });
    }
    {
        let (cq, vq, cls) = (claim_q.clone(), volume_q.clone(), claims.clone());
        inf.get::<PersistentVolume>().on_change(move |old, new| {
            let Some(v) = new.or(old) else { return };
            vq.add(Key::cluster(&v.name_any()));
            // A new or freed volume may serve any waiting claim.
            for c in cls.state().iter().filter(|c| unbound(c)) {
                cq.add(Key::of(c.meta()));
            }
            if let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                cq.add(Key::namespaced(r.namespace.as_deref().unwrap_or_default(), r.name.as_deref().unwrap_or_default()));
            }
        });
    }
    {
        let (cq, cls) = (claim_q.clone(), claims.clone());
        inf.get::<StorageClass>().on_change(move |_, _| {
            for c in cls.state().iter().filter(|c| unbound(c)) {
                cq.add(Key::of(c.meta()));
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        claims,
        volumes,
        classes: inf.store(),
        nodes: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), "persistentvolume-controller"),
        last_note: Mutex::default(),
    });
    let all_synced = |inf: &mut Informers| {
        vec![
            inf.synced::<PersistentVolumeClaim>(),
            inf.synced::<PersistentVolume>(),
            inf.synced::<StorageClass>(),
            inf.synced::<Node>(),
        ]
    };
    let s = state.clone();
    run_workers("persistentvolume-binder-claims", claim_q, 1, ctx.metrics.clone(), all_synced(inf), move |key| {
        let s = s.clone();
        async move { sync_claim(&s, &key).await }
    });
    let s = state;
    run_workers("persistentvolume-binder-volumes", volume_q, 1, ctx.metrics.clone(), all_synced(inf), move |key| {
        let s = s.clone();
        async move { sync_volume(&s, &key).await }
    });
}

impl State {
    /// Record `note` about `obj` unless it is what was said last.
    fn say<K>(&self, obj: &K, note: Option<Note>)
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        let uid = obj.metadata().uid.clone().unwrap_or_default();
        let mut last = self.last_note.lock().unwrap_or_else(|p| p.into_inner());
        match note {
            None => {
                last.remove(&uid);
            }
            Some(n) => {
                if last.get(&uid) != Some(&n) {
                    self.recorder.record(obj, n.type_, n.reason, &n.message);
                    last.insert(uid, n);
                }
            }
        }
    }

    fn claims_api(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    fn volumes_api(&self) -> Api<PersistentVolume> {
        Api::all(self.ctx.client.clone())
    }
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

async fn set_claim_phase(st: &State, claim: &PersistentVolumeClaim, phase: &str) -> Result<()> {
    if claim_phase(claim) == phase {
        return Ok(());
    }
    let mut next = claim.clone();
    let status = next.status.get_or_insert_with(PersistentVolumeClaimStatus::default);
    status.phase = Some(phase.to_string());
    if phase == "Pending" {
        status.access_modes = None;
        status.capacity = None;
    }
    let api = st.claims_api(claim.namespace().as_deref().unwrap_or_default());
    match timed(api.replace_status(&claim.name_any(), &PostParams::default(), &next)).await? {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn set_volume_phase(st: &State, pv: &PersistentVolume, phase: &str) -> Result<Option<PersistentVolume>> {
    if reclaim::phase(pv) == phase {
        return Ok(Some(pv.clone()));
    }
    let mut next = pv.clone();
    next.status.get_or_insert_with(PersistentVolumeStatus::default).phase = Some(phase.to_string());
    match timed(st.volumes_api().replace_status(&pv.name_any(), &PostParams::default(), &next)).await? {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn sync_claim(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(claim) = st.claims.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let volumes = st.volumes.state();
    let class_name = volume::claim_class(&claim);
    let class = (!class_name.is_empty()).then(|| st.classes.get(&ObjectRef::new(&class_name))).flatten();
    let node = claim
        .annotations()
        .get(ANN_SELECTED_NODE)
        .and_then(|n| st.nodes.get(&ObjectRef::new(n)));
    match binder::plan_claim(&claim, &volumes, class.as_deref(), node.as_deref()) {
        ClaimAction::Pending(note) => {
            set_claim_phase(st, &claim, "Pending").await?;
            st.say(claim.as_ref(), note);
        }
        ClaimAction::Lost(note) => {
            set_claim_phase(st, &claim, "Lost").await?;
            st.say(claim.as_ref(), Some(note));
        }
        ClaimAction::Provision { provisioner, note } => {
            let mut next = (*claim).clone();
            let ann = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
            ann.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.clone());
            ann.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner);
            match timed(st.claims_api(key.ns()).replace(&key.name, &PostParams::default(), &next)).await? {
                Ok(c) => {
                    set_claim_phase(st, &c, "Pending").await?;
                    st.say(&c, Some(note));
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        ClaimAction::Bind(name) => {
            let Some(pv) = volumes.iter().find(|v| v.name_any() == name) else { return Ok(None) };
            bind(st, &claim, pv).await?;
            st.say(claim.as_ref(), None);
        }
    }
    Ok(None)
}

/// ctrl.bind: the volume's claimRef and phase, then the claim's volumeName,
/// annotations and status; each written only if it differs, so a bind
/// interrupted half-way is finished by the next sync.
async fn bind(st: &State, claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> Result<()> {
    let name = pv.name_any();
    let mut pv = pv.clone();
    if !binder::volume_points_at(&pv, claim) {
        let want = binder::bound_volume(&pv, claim);
        pv = match timed(st.volumes_api().replace(&name, &PostParams::default(), &want)).await? {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    }
    let Some(pv) = set_volume_phase(st, &pv, "Bound").await? else { return Ok(()) };
    let ns = claim.namespace().unwrap_or_default();
    let mut claim = claim.clone();
    if !binder::claim_is_bound_to(&claim, &name) {
        let want = binder::bound_claim(&claim, &name);
        claim = match timed(st.claims_api(&ns).replace(&claim.name_any(), &PostParams::default(), &want)).await? {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    }
    let pspec = pv.spec.clone().unwrap_or_default();
    let old = claim.status.clone().unwrap_or_default();
    let status = PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        access_modes: pspec.access_modes,
        capacity: pspec.capacity,
        ..old.clone()
    };
    if status != old {
        let mut next = claim.clone();
        next.status = Some(status);
        match timed(st.claims_api(&ns).replace_status(&claim.name_any(), &PostParams::default(), &next)).await? {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn sync_volume(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(pv) = st.volumes.get(&ObjectRef::new(&key.name)) else {
        return Ok(None);
    };
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let claim = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|r| {
        st.claims
            .get(&ObjectRef::new(r.name.as_deref()?).within(r.namespace.as_deref().unwrap_or_default()))
    });
    match reclaim::plan_volume(&pv, claim.as_ref()) {
        VolumeAction::Nothing => {}
        VolumeAction::Phase(phase, note) => {
            let changed = reclaim::phase(&pv) != phase;
            set_volume_phase(st, &pv, phase).await?;
            if changed {
                if let Some(n) = note {
                    st.recorder.record(pv.as_ref(), n.type_, n.reason, &n.message);
                }
            }
        }
        VolumeAction::Unbind => {
            let mut next = (*pv).clone();
            if let Some(s) = next.spec.as_mut() {
                s.claim_ref = None;
            }
            if let Some(a) = next.metadata.annotations.as_mut() {
                a.remove(ANN_BOUND_BY_CONTROLLER);
            }
            match timed(st.volumes_api().replace(&key.name, &PostParams::default(), &next)).await? {
                Ok(v) => {
                    set_volume_phase(st, &v, "Available").await?;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(None)
}
