//! Range and consistency checks that the types alone cannot express.

use super::{Config, ConfigError};

impl Config {
    /// Range checks that the types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.bootstrap.split(',').any(|addr| !is_host_port(addr.trim())) {
            return Err(ConfigError::invalid(
                "kafka.bootstrap",
                format!("{:?} is not a comma-separated list of host:port", k.bootstrap),
            ));
        }
        check_range("kafka.partitions", i64::from(k.partitions), 1, 10_000)?;
        if let Some(factor) = k.replication_factor {
            check_range("kafka.replication_factor", i64::from(factor), 1, 32)?;
        }
        if let Some(min_isr) = k.min_insync_replicas {
            check_range("kafka.min_insync_replicas", i64::from(min_isr), 1, 32)?;
        }
        // With the factor unset, `provision` checks against the one it chooses.
        if let (Some(factor), Some(min_isr)) = (k.replication_factor, k.min_insync_replicas)
            && min_isr > factor
        {
            return Err(ConfigError::invalid(
                "kafka.min_insync_replicas",
                format!("{min_isr} is larger than kafka.replication_factor ({factor})"),
            ));
        }
        check_range("kafka.request_timeout_ms", k.request_timeout_ms as i64, 100, 600_000)?;
        self.validate_security()?;
        let p = &self.producer;
        check_range("producer.linger_ms", i64::from(p.linger_ms), 0, 900_000)?;
        check_range("producer.batch_size", i64::from(p.batch_size), 1, 2_147_483_647)?;
        check_range("producer.batch_num_messages", i64::from(p.batch_num_messages), 1, 1_000_000)?;
        check_range("producer.queue_max_messages", i64::from(p.queue_max_messages), 1, 2_147_483_647)?;
        if !["all", "-1", "0", "1"].contains(&p.acks.as_str()) {
            return Err(ConfigError::invalid("producer.acks", format!("{:?} is not one of all, 0, 1", p.acks)));
        }
        if let Some(name) = &self.service.name
            && !crate::naming::is_name_part(name)
        {
            return Err(ConfigError::invalid(
                "service.name",
                format!("{name:?} is not a service name (lowercase words joined by single dashes)"),
            ));
        }
        if let Err(err) = self.topology.build() {
            return Err(ConfigError::invalid("topology.topics", err.to_string()));
        }
        if self.service.consumer_instance_id.is_empty() {
            return Err(ConfigError::invalid("service.consumer_instance_id", "must not be empty"));
        }
        let r = &self.runner;
        check_range("runner.commit_interval_ms", r.commit_interval_ms as i64, 1, 60_000)?;
        check_range("runner.max_batch", r.max_batch as i64, 1, 1_000_000)?;
        check_range("runner.plugin_batch", r.plugin_batch as i64, 1, 10_000)?;
        check_range("runner.commit_min_gap_ms", r.commit_min_gap_ms as i64, 0, 60_000)?;
        check_range("runner.max_retries", i64::from(r.max_retries), 0, 100)?;
        check_range("runner.shutdown_timeout_ms", r.shutdown_timeout_ms as i64, 100, 600_000)?;
        check_range("runner.linger_ms", i64::from(r.linger_ms), 0, 60_000)?;
        check_range("runner.fetch_min_bytes", i64::from(r.fetch_min_bytes), 1, 100_000_000)?;
        check_range("runner.fetch_wait_max_ms", i64::from(r.fetch_wait_max_ms), 0, 300_000)?;
        let w = &self.plugin;
        check_range("plugin.deadline_ms", w.deadline_ms as i64, 1, 600_000)?;
        check_range("plugin.memory_limit_mib", w.memory_limit_mib as i64, 1, 4096)?;
        check_range("kafka.outage_timeout_ms", k.outage_timeout_ms as i64, 1_000, 3_600_000)?;
        check_range("runner.max_retry_backoff_ms", r.max_retry_backoff_ms as i64, 0, 600_000)?;
        check_range("runner.transaction_timeout_ms", r.transaction_timeout_ms as i64, 1_000, 900_000)?;
        check_range("runner.max_poll_interval_ms", r.max_poll_interval_ms as i64, 1_000, 86_400_000)?;
        // Kafka's default message.max.bytes is 1 MiB; librdkafka needs room
        // for its own framing above a record.
        check_range("runner.max_record_bytes", r.max_record_bytes as i64, 1_024, 1_000_000)?;
        check_range("runner.restore_timeout_ms", r.restore_timeout_ms as i64, 1_000, 3_600_000)?;
        check_range("runner.checkpoint_interval_ms", r.checkpoint_interval_ms as i64, 0, 3_600_000)?;
        check_range("runner.wedge_timeout_ms", r.wedge_timeout_ms as i64, 10_000, 3_600_000)?;
        // Half of the broker's default delete.retention.ms.
        check_range("runner.checkpoint_max_age_ms", r.checkpoint_max_age_ms as i64, 1_000, 43_200_000)?;
        check_range("runner.stall_timeout_ms", r.stall_timeout_ms as i64, 1_000, 3_600_000)?;
        if r.restore_timeout_ms <= r.transaction_timeout_ms {
            return Err(ConfigError::invalid(
                "runner.restore_timeout_ms",
                format!(
                    "{} must exceed runner.transaction_timeout_ms ({}): a dead owner's open transaction holds a restore that long",
                    r.restore_timeout_ms, r.transaction_timeout_ms
                ),
            ));
        }
        // A loop turn may take half of this (see `runner::turn`) without a heartbeat.
        let turn_bound = r.transaction_timeout_ms.min(r.max_poll_interval_ms);
        if r.wedge_timeout_ms <= turn_bound {
            return Err(ConfigError::invalid(
                "runner.wedge_timeout_ms",
                format!(
                    "{} must exceed the smaller of runner.transaction_timeout_ms and runner.max_poll_interval_ms ({turn_bound}): a slow loop turn is not a stuck one",
                    r.wedge_timeout_ms
                ),
            ));
        }
        let budget = w.memory_limit_mib << 20;
        check_range("plugin.max_pending_state_bytes", w.max_pending_state_bytes as i64, 1, budget as i64)?;
        check_range("plugin.max_key_bytes", w.max_key_bytes as i64, 1, r.max_record_bytes as i64)?;
        check_range("plugin.max_value_bytes", w.max_value_bytes as i64, 1, r.max_record_bytes as i64)?;
        // 128: the framing `runner::dlq::record_size` counts on every record.
        if w.max_key_bytes + w.max_value_bytes + 128 > r.max_record_bytes as u64 {
            return Err(ConfigError::invalid(
                "plugin.max_value_bytes",
                format!(
                    "a state record (plugin.max_key_bytes {} + plugin.max_value_bytes {} + 128 bytes of framing) must fit in runner.max_record_bytes ({})",
                    w.max_key_bytes, w.max_value_bytes, r.max_record_bytes
                ),
            ));
        }
        check_range("plugin.max_outputs", w.max_outputs as i64, 1, 100_000)?;
        check_range("plugin.max_output_bytes", w.max_output_bytes as i64, 1, budget as i64)?;
        check_range("plugin.max_log_lines", w.max_log_lines as i64, 0, 100_000)?;
        check_range("plugin.max_log_bytes", w.max_log_bytes as i64, 0, 16 << 20)?;
        check_range("plugin.max_manifest_string_bytes", w.max_manifest_string_bytes as i64, 16, 65_536)?;
        check_range("plugin.max_manifest_actions", w.max_manifest_actions as i64, 1, 10_000)?;
        check_range("plugin.max_table_elements", w.max_table_elements as i64, 1, 100_000_000)?;
        check_range("plugin.max_component_bytes", w.max_component_bytes as i64, 1_024, 1 << 30)?;
        check_range("plugin.max_compile_ms", w.max_compile_ms as i64, 1, 3_600_000)?;
        let m = &self.metrics;
        if let Some(listen) = &m.listen
            && !is_host_port(listen)
        {
            return Err(ConfigError::invalid("metrics.listen", format!("{listen:?} is not host:port")));
        }
        check_range("metrics.lag_interval_ms", m.lag_interval_ms as i64, 100, 3_600_000)?;
        let g = &self.gateway;
        if !is_host_port(&g.listen) {
            return Err(ConfigError::invalid("gateway.listen", format!("{:?} is not host:port", g.listen)));
        }
        if let Some(secret) = &g.jwt_secret
            && secret.len() < super::MIN_JWT_SECRET_BYTES
        {
            return Err(ConfigError::invalid(
                "gateway.jwt_secret",
                format!("{} bytes is too short for HS256; use at least {}", secret.len(), super::MIN_JWT_SECRET_BYTES),
            ));
        }
        check_range("gateway.token_ttl_s", g.token_ttl_s as i64, 1, 31_536_000)?;
        check_range("gateway.max_token_lifetime_s", g.max_token_lifetime_s as i64, 1, 31_536_000)?;
        // Minutes of skew mean a clock to fix, not a leeway to grant.
        check_range("gateway.token_leeway_s", g.token_leeway_s as i64, 0, 300)?;
        if g.token_ttl_s > g.max_token_lifetime_s {
            return Err(ConfigError::invalid(
                "gateway.token_ttl_s",
                format!(
                    "{} exceeds gateway.max_token_lifetime_s ({}): the gateway would refuse the tokens `gateway token` prints",
                    g.token_ttl_s, g.max_token_lifetime_s
                ),
            ));
        }
        for (key, value) in [("gateway.token_issuer", &g.token_issuer), ("gateway.token_audience", &g.token_audience)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError::invalid(key, "must not be empty; leave it unset to not check it"));
            }
        }
        check_range("gateway.seat_events_interval_ms", g.seat_events_interval_ms as i64, 10, 60_000)?;
        check_range("gateway.stream_interval_ms", g.stream_interval_ms as i64, 10, 60_000)?;
        check_range("gateway.ack_timeout_ms", g.ack_timeout_ms as i64, 100, 600_000)?;
        check_range("gateway.linger_ms", i64::from(g.linger_ms), 0, 1_000)?;
        check_range("gateway.idempotency_ttl_s", g.idempotency_ttl_s as i64, 60, 31_536_000)?;
        if let Some(admin) = &g.admin_listen
            && (!is_host_port(admin) || *admin == g.listen)
        {
            return Err(ConfigError::invalid(
                "gateway.admin_listen",
                format!("{admin:?} is not host:port, or is gateway.listen itself"),
            ));
        }
        check_range("gateway.header_read_timeout_ms", g.header_read_timeout_ms as i64, 100, 600_000)?;
        check_range("gateway.body_timeout_ms", g.body_timeout_ms as i64, 100, 600_000)?;
        check_range("gateway.request_timeout_ms", g.request_timeout_ms as i64, 100, 600_000)?;
        // hyper refuses a read buffer under 8 KiB.
        check_range("gateway.max_header_bytes", g.max_header_bytes as i64, 8_192, 1 << 20)?;
        check_range("gateway.max_body_bytes", g.max_body_bytes as i64, 1_024, 1 << 20)?;
        check_range("gateway.max_connections", g.max_connections as i64, 1, 1 << 20)?;
        check_range("gateway.max_streams", g.max_streams as i64, 0, 1 << 20)?;
        check_range("gateway.max_streams_per_client", g.max_streams_per_client as i64, 0, 1 << 20)?;
        check_range("gateway.stream_keepalive_ms", g.stream_keepalive_ms as i64, 100, 600_000)?;
        // A slow message must finish inside its transaction, or the broker
        // aborts the transaction under it and the message replays forever.
        let worst = self.worst_case_message_ms();
        let bound = r.transaction_timeout_ms.min(r.max_poll_interval_ms) / 2;
        if worst > bound {
            return Err(ConfigError::invalid(
                "runner.transaction_timeout_ms",
                format!(
                    "one message may take up to {worst} ms (plugin.deadline_ms {} x {} calls + backoff capped at \
                     runner.max_retry_backoff_ms {}), more than half of runner.transaction_timeout_ms ({}) and \
                     runner.max_poll_interval_ms ({}); lower the deadline or retries, or raise the timeouts",
                    w.deadline_ms,
                    r.max_retries + 2,
                    r.max_retry_backoff_ms,
                    r.transaction_timeout_ms,
                    r.max_poll_interval_ms
                ),
            ));
        }
        Ok(())
    }

    /// The longest one message can keep the runner busy: the batch that
    /// held it timing out, then every attempt of its own running to the
    /// deadline, plus the capped, doubling backoff between them.
    pub fn worst_case_message_ms(&self) -> u64 {
        let r = &self.runner;
        let attempts = u64::from(r.max_retries) + 2;
        let mut backoff = r.retry_backoff_ms;
        let mut total = attempts.saturating_mul(self.plugin.deadline_ms);
        for _ in 0..r.max_retries {
            total = total.saturating_add(backoff.min(r.max_retry_backoff_ms));
            backoff = backoff.saturating_mul(2);
        }
        total
    }
}

fn check_range(key: &str, value: i64, min: i64, max: i64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, format!("{value} is out of range {min}..={max}")))
    }
}

fn is_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}
