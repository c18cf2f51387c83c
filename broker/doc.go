// Package broker runs an embedded Kafka-protocol broker (franz-go's kfake) for
// development, tests, `recon demo`, `recon bench` and `recon broker`.
//
// It owns one kfake node on a TCP address that any Kafka client can reach, the
// optional on-disk persistence of that node, and the bridge of kfake's logs to
// slog. It is not a production broker: there is one node, no replication and
// no advertised-listener configuration, so clients must be able to dial the
// address it listens on. It knows nothing of recon's topics or events.
package broker
