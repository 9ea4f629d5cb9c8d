//! The SQL of the queue: its tables and the statements over them, as each engine writes them.

/// The database engine behind a [`super::SqlBroker`]: what differs is column types and row locking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// Names the broker in errors.
    pub(super) fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "pubsub.sqlite",
            Engine::Postgres => "pubsub.postgresql",
        }
    }

    fn create_tables(self, prefix: &str) -> Vec<String> {
        // AUTOINCREMENT, like PostgreSQL's identities, never reuses a number: an old delivery id must not
        // name a later message, nor an old group id a later group.
        let (serial, bytes, big) = match self {
            Engine::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "INTEGER"),
            Engine::Postgres => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "BIGINT"),
        };
        let mut statements = vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_messages \
                 (seq {serial}, topic TEXT NOT NULL, payload {bytes} NOT NULL, published_at {big} NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {prefix}_messages_age ON {prefix}_messages (published_at)"),
            // A topic's messages: counted for the console, and given to a group its topic gets.
            format!("CREATE INDEX IF NOT EXISTS {prefix}_messages_topic ON {prefix}_messages (topic, seq)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_groups \
                 (id {serial}, topic TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (topic, name))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_deliveries (group_id {big} NOT NULL, seq {big} NOT NULL, \
                 attempts {big} NOT NULL, available_at {big} NOT NULL, PRIMARY KEY (group_id, seq))"
            ),
            format!("CREATE INDEX IF NOT EXISTS {prefix}_deliveries_seq ON {prefix}_deliveries (seq)"),
        ];
        // The groups of a project's topics are a range of topics in byte order (see `topic_bytewise`): on SQLite
        // the unique index's, on PostgreSQL one of its own, since its collation may not order by bytes.
        if self == Engine::Postgres {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {prefix}_groups_bytewise ON {prefix}_groups ((topic COLLATE \"C\"), name)"
            ));
        }
        statements
    }

    /// `topic` compared byte by byte: PostgreSQL's collation may not order by bytes, and then a key range would not
    /// hold exactly the topics starting with a prefix.
    fn topic_bytewise(self) -> &'static str {
        match self {
            Engine::Sqlite => "topic",
            Engine::Postgres => "(topic COLLATE \"C\")",
        }
    }

    /// Stores a message ($1 topic, $2 payload, $3 now) with a delivery row for every group of its topic, in one
    /// execution (one round trip to the database).
    fn publish(self, messages: &str, groups: &str, deliveries: &str) -> String {
        let insert_message = format!("INSERT INTO {messages} (topic, payload, published_at) VALUES ($1, $2, $3)");
        let columns = format!("{deliveries} (group_id, seq, attempts, available_at)");
        match self {
            // Two statements. Publishes run only in the writer's transaction, which holds SQLite's write lock, so
            // the highest sequence number is the message just inserted (AUTOINCREMENT only grows);
            // last_insert_rowid() would not do, as it changes with each delivery row inserted. Should the second
            // statement fail after the first, the caller is told so and the sweep deletes the message, which no
            // group has.
            Engine::Sqlite => format!(
                "{insert_message}; INSERT INTO {columns} SELECT id, (SELECT MAX(seq) FROM {messages}), 0, $3 \
                 FROM {groups} WHERE topic = $1"
            ),
            // One statement, atomic by itself.
            Engine::Postgres => format!(
                "WITH message AS ({insert_message} RETURNING seq) INSERT INTO {columns} \
                 SELECT g.id, message.seq, 0, $3 FROM {groups} AS g, message WHERE g.topic = $1"
            ),
        }
    }

    /// Creates a group ($1 topic, $2 name, $3 now) unless it exists; a group it creates holds every message of its
    /// topic still stored, as daprd creates a Redis consumer group at `0`: what was published before the
    /// subscriber's first fetch reaches it.
    fn insert_group(self, messages: &str, groups: &str, deliveries: &str) -> String {
        let insert_group =
            format!("INSERT INTO {groups} (topic, name) VALUES ($1, $2) ON CONFLICT (topic, name) DO NOTHING");
        let columns = format!("{deliveries} (group_id, seq, attempts, available_at)");
        match self {
            // Two statements in the writer's transaction: changes() is still the first one's count (1 when it
            // created the group) while the second runs.
            Engine::Sqlite => format!(
                "{insert_group}; INSERT INTO {columns} SELECT g.id, m.seq, 0, $3 FROM {groups} AS g \
                 JOIN {messages} AS m ON m.topic = g.topic WHERE g.topic = $1 AND g.name = $2 AND changes() = 1"
            ),
            Engine::Postgres => format!(
                "WITH created AS ({insert_group} RETURNING id) INSERT INTO {columns} \
                 SELECT created.id, m.seq, 0, $3 FROM created, {messages} AS m WHERE m.topic = $1"
            ),
        }
    }

    /// What the claim's row choice adds so that concurrent claims skip each other's rows.
    fn claim_lock(self) -> &'static str {
        match self {
            // One writer at a time: a claim cannot interleave with another.
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// The statements over one set of tables.
pub(super) struct Statements {
    pub(super) create_tables: Vec<String>,
    pub(super) publish: String,
    pub(super) insert_group: String,
    pub(super) group_id: String,
    pub(super) claim: String,
    pub(super) ack: String,
    pub(super) retry: String,
    pub(super) delete_group_deliveries: String,
    pub(super) delete_group: String,
    pub(super) sweep_bounds: String,
    pub(super) sweep_deliveries: String,
    pub(super) sweep_messages: String,
    pub(super) count_pending: String,
    pub(super) count_kept: String,
    pub(super) groups_bounded: String,
    pub(super) groups_unbounded: String,
}

impl Statements {
    pub(super) fn new(engine: Engine, prefix: &str) -> Statements {
        let (messages, groups, deliveries) =
            (format!("{prefix}_messages"), format!("{prefix}_groups"), format!("{prefix}_deliveries"));
        let group_of = format!("(SELECT id FROM {groups} WHERE topic = $1 AND name = $2)");
        let topic = engine.topic_bytewise();
        let groups_in = |upper: &str| {
            format!("SELECT topic, name FROM {groups} WHERE {topic} >= $1{upper} ORDER BY {topic}, name LIMIT $2")
        };
        Statements {
            // $1 group id, $2 the most to count: an index range of the group's rows, cut at the cap.
            count_pending: format!(
                "SELECT COUNT(*) AS counted FROM (SELECT 1 FROM {deliveries} WHERE group_id = $1 LIMIT $2) AS pending"
            ),
            // $1 topic, $2 the most to count.
            count_kept: format!(
                "SELECT COUNT(*) AS counted FROM (SELECT 1 FROM {messages} WHERE topic = $1 LIMIT $2) AS kept"
            ),
            // $1 the prefix, $2 the most rows, $3 the end of the prefix's range.
            groups_bounded: groups_in(&format!(" AND {topic} < $3")),
            groups_unbounded: groups_in(""),
            create_tables: engine.create_tables(prefix),
            publish: engine.publish(&messages, &groups, &deliveries),
            insert_group: engine.insert_group(&messages, &groups, &deliveries),
            group_id: format!("SELECT id FROM {groups} WHERE topic = $1 AND name = $2"),
            // $1 topic, $2 group, $3 now, $4 max, $5 end of the hold.
            // No alias for the updated table: SQLite's RETURNING knows it by its name only.
            claim: format!(
                "UPDATE {deliveries} SET attempts = attempts + 1, available_at = $5 \
                 WHERE group_id = {group_of} AND seq IN (SELECT seq FROM {deliveries} \
                 WHERE group_id = {group_of} AND available_at <= $3 ORDER BY seq LIMIT $4{}) RETURNING seq, attempts, \
                 (SELECT payload FROM {messages} AS m WHERE m.seq = {deliveries}.seq) AS payload, \
                 (SELECT published_at FROM {messages} AS m WHERE m.seq = {deliveries}.seq) AS published_at",
                engine.claim_lock()
            ),
            ack: format!("DELETE FROM {deliveries} WHERE group_id = {group_of} AND seq = $3"),
            retry: format!("UPDATE {deliveries} SET available_at = $4 WHERE group_id = {group_of} AND seq = $3"),
            delete_group_deliveries: format!("DELETE FROM {deliveries} WHERE group_id IN {group_of}"),
            delete_group: format!("DELETE FROM {groups} WHERE topic = $1 AND name = $2"),
            sweep_bounds: format!("SELECT MIN(seq) AS low, MAX(seq) AS high FROM {messages}"),
            // Within the window [$2, $3): rows of groups deleted while a publish added to them are orphans;
            // messages published before $1 (expired) go whole.
            sweep_deliveries: format!(
                "DELETE FROM {deliveries} WHERE seq >= $2 AND seq < $3 AND (EXISTS (SELECT 1 FROM {messages} AS m \
                 WHERE m.seq = {deliveries}.seq AND m.published_at < $1) \
                 OR NOT EXISTS (SELECT 1 FROM {groups} AS g WHERE g.id = {deliveries}.group_id))"
            ),
            // Within the window [$1, $2): messages no group holds, unless their topic has no group yet and they
            // are younger than $3 (kept for the first group, as a Redis stream keeps them).
            sweep_messages: format!(
                "DELETE FROM {messages} WHERE seq >= $1 AND seq < $2 AND NOT EXISTS \
                 (SELECT 1 FROM {deliveries} AS d WHERE d.seq = {messages}.seq) AND (published_at < $3 \
                 OR EXISTS (SELECT 1 FROM {groups} AS g WHERE g.topic = {messages}.topic))"
            ),
        }
    }
}
