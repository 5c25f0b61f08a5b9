//! Consumer-group descriptions through librdkafka's `DescribeConsumerGroups`
//! admin call, which rust-rdkafka does not wrap.
//!
//! Services join with Kafka 4's consumer group protocol (KIP-848). The
//! classic `DescribeGroups` request, all that `fetch_group_list` sends,
//! shows such a group as `Dead` with no members; `DescribeConsumerGroups`
//! asks with `ConsumerGroupDescribe` as well and answers for both kinds.

use std::ffi::{CStr, CString, c_char};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use super::client::{GroupMember, GroupSummary};

/// Why a description failed.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("a group name contains a NUL byte: {0:?}")]
    BadName(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Kafka(String),
}

/// Owns a librdkafka object and destroys it on drop.
struct Owned<T> {
    ptr: *mut T,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` came from the matching librdkafka constructor
            // and is destroyed exactly once, here.
            unsafe { (self.destroy)(self.ptr) }
        }
    }
}

fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka returns NUL-terminated strings that live as long
    // as the result event, which outlives every call of this function.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

/// Describes `names` (state, members and each member's current assignment)
/// through `client`. Groups the broker does not know come back `Dead`.
pub fn describe<C: ClientContext>(
    client: &Client<C>,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<GroupSummary>, DescribeError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let c_names: Vec<CString> = names
        .iter()
        .map(|n| CString::new(n.as_str()).map_err(|_| DescribeError::BadName(n.clone())))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = c_names.iter().map(|n| n.as_ptr()).collect();
    let rk = client.native_ptr();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);

    // SAFETY: `rk` is a live client for the whole call (borrowed from
    // `client`); every object created below is owned by an `Owned` guard or
    // by the result event, and nothing read from the event outlives it.
    unsafe {
        let queue = Owned { ptr: rd::rd_kafka_queue_new(rk), destroy: rd::rd_kafka_queue_destroy };
        let options = Owned {
            ptr: rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS),
            destroy: rd::rd_kafka_AdminOptions_destroy,
        };
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(options.ptr, timeout_ms, errstr.as_mut_ptr(), errstr.len());
        rd::rd_kafka_DescribeConsumerGroups(rk, pointers.as_mut_ptr(), pointers.len(), options.ptr, queue.ptr);

        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        let event = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DescribeError::Timeout(timeout));
            }
            let ev = rd::rd_kafka_queue_poll(queue.ptr, i32::try_from(left.as_millis()).unwrap_or(i32::MAX));
            if ev.is_null() {
                continue;
            }
            let ev = Owned { ptr: ev, destroy: rd::rd_kafka_event_destroy };
            if rd::rd_kafka_event_type(ev.ptr) == rd::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT {
                break ev;
            }
        };
        if rd::rd_kafka_event_error(event.ptr) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(DescribeError::Kafka(text(rd::rd_kafka_event_error_string(event.ptr))));
        }
        let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event.ptr);
        if result.is_null() {
            return Err(DescribeError::Kafka("the answer holds no group descriptions".into()));
        }
        let mut count = 0usize;
        let groups = rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
        let mut described = Vec::with_capacity(count);
        for i in 0..count {
            let g = *groups.add(i);
            let name = text(rd::rd_kafka_ConsumerGroupDescription_group_id(g));
            let error = rd::rd_kafka_ConsumerGroupDescription_error(g);
            if !error.is_null() {
                let code = rd::rd_kafka_error_code(error);
                if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND {
                    described.push(GroupSummary { name, state: "Dead".into(), members: Vec::new() });
                    continue;
                }
                return Err(DescribeError::Kafka(format!(
                    "describing group {name}: {}",
                    text(rd::rd_kafka_error_string(error))
                )));
            }
            let state = text(rd::rd_kafka_consumer_group_state_name(rd::rd_kafka_ConsumerGroupDescription_state(g)));
            let members = (0..rd::rd_kafka_ConsumerGroupDescription_member_count(g))
                .map(|m| {
                    let member = rd::rd_kafka_ConsumerGroupDescription_member(g, m);
                    GroupMember {
                        member_id: text(rd::rd_kafka_MemberDescription_consumer_id(member)),
                        client_id: text(rd::rd_kafka_MemberDescription_client_id(member)),
                        host: text(rd::rd_kafka_MemberDescription_host(member)),
                        assignment: partitions(rd::rd_kafka_MemberDescription_assignment(member)),
                    }
                })
                .collect();
            described.push(GroupSummary { name, state, members });
        }
        Ok(described)
    }
}

/// The `(topic, partition)` pairs of a member assignment.
///
/// # Safety
/// `assignment` is null or points into a live result event.
unsafe fn partitions(assignment: *const rd::rd_kafka_MemberAssignment_t) -> Vec<(String, i32)> {
    if assignment.is_null() {
        return Vec::new();
    }
    // SAFETY: per the function's contract; the list and its elements belong
    // to the same event.
    unsafe {
        let list = rd::rd_kafka_MemberAssignment_partitions(assignment);
        if list.is_null() || (*list).elems.is_null() {
            return Vec::new();
        }
        let elems = std::slice::from_raw_parts((*list).elems, usize::try_from((*list).cnt).unwrap_or(0));
        let mut pairs: Vec<(String, i32)> = elems.iter().map(|e| (text(e.topic), e.partition)).collect();
        pairs.sort();
        pairs
    }
}
