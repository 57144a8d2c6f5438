//! Polling a condition with a deadline: tests never sleep a fixed time to
//! assert something.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Error;

/// Poll `f` until it returns `Some(t)`, or fail after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_or(timeout, "condition", f).await
}

/// Like [`wait_for`], naming what is waited for in the timeout error.
pub async fn wait_for_or<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(t) = f().await {
            return Ok(t);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                waited,
            });
        }
        // Back off to at most 500ms between polls, never past the deadline.
        let left = timeout - waited;
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_some() {
        let n = AtomicU32::new(0);
        let got = wait_for(Duration::from_secs(10), || async {
            let v = n.fetch_add(1, Ordering::SeqCst);
            (v >= 2).then_some(v)
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
    }

    #[tokio::test]
    async fn times_out_naming_what_it_waited_for() {
        let err = wait_for_or(Duration::from_millis(100), "the moon", || async {
            None::<()>
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }));
        assert!(err.to_string().contains("the moon"));
    }
}
