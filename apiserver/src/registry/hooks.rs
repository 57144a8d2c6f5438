//! What a kind holds beside its objects (upstream's BeginCreate/BeginUpdate/AfterDelete
//! hooks of the Service REST): values drawn from a shared pool — cluster IPs, node ports —
//! taken before an object is written and given back when the write fails or the object
//! stops using them. The generic Store calls these; a kind's own code fills them in.

use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::Value;

/// One value of one pool (`ip` "10.96.0.7", `nodePort` "30080").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    pub pool: &'static str,
    pub value: String,
}

/// What an update asks a pool for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This value (the client asked for it).
    Exactly(Item),
    /// Any free value of the pool.
    Any(&'static str),
}

/// Values reserved for an update before it is written, with the claim each answers.
#[derive(Clone, Debug, Default)]
pub struct Reserved {
    pub items: Vec<(Claim, Item)>,
}

/// Why an update's synchronous step stopped.
#[derive(Debug)]
pub enum UpdateHookError {
    /// A 4xx answer for the client.
    Api(ApiError),
    /// These values must be reserved first; the write is tried again afterwards.
    Needs(Vec<Claim>),
}

pub trait AllocationHooks: Send + Sync + 'static {
    /// Before a create is written: take what `obj` asks for (or fill in fresh values). A
    /// dry run checks without taking.
    fn begin_create<'a>(&'a self, obj: &'a mut Value, dry_run: bool) -> BoxFuture<'a, Result<(), ApiError>>;
    /// A create that `begin_create` let through was not written: give its values back.
    fn abort_create<'a>(&'a self, obj: &'a Value) -> BoxFuture<'a, ()>;
    /// Inside an update's retry, from the stored `old` to `new`: keep what `old` holds when
    /// `new` omits it, drop what `new`'s type no longer uses, fill new values from `reserved`
    /// (marking what it used) or ask for more.
    fn update(&self, old: &Value, new: &mut Value, reserved: &Reserved) -> Result<(), UpdateHookError>;
    /// Reserves `claims`, adding them to `reserved`.
    fn reserve<'a>(&'a self, claims: Vec<Claim>, reserved: &'a mut Reserved) -> BoxFuture<'a, Result<(), ApiError>>;
    /// After an update: give back what `old` held and `new` does not, and what was reserved
    /// but `new` does not use. `new` None: the update deleted the object (everything goes
    /// back); `old` None: nothing was written (only the reservations go back).
    fn finish_update<'a>(&'a self, old: Option<&'a Value>, new: Option<&'a Value>, reserved: Reserved) -> BoxFuture<'a, ()>;
    /// After a delete: give back everything `obj` held.
    fn after_delete<'a>(&'a self, obj: &'a Value) -> BoxFuture<'a, ()>;
}
