//! authentication.k8s.io: TokenReview and SelfSubjectReview are answered, never stored
//! (their handlers are `crate::auth::reviews`); TokenRequest is the serviceaccounts/token
//! subresource (`crate::auth::token_request`).

use crate::registry::strategy::Strategy;

pub struct Reviews;

impl Strategy for Reviews {
    fn create_only(&self) -> bool {
        true
    }
}
