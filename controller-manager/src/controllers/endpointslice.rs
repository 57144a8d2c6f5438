use super::Ctx;
use crate::runtime::Informers;
pub fn register(_inf: &mut Informers, _ctx: &Ctx) {}
