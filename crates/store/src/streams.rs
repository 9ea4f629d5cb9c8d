//! Streaming subscriptions listed across gateways: the gateway holding an app's stream writes a row and keeps
//! it alive; any gateway answering the app's `/v1.0/metadata` reads them.

use sqlx::Row;

use crate::{now_millis, ProjectId, Result, Tx};

/// One open streaming subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSubscription {
    /// Unique per stream.
    pub id: String,
    /// The subscribing app's project.
    pub project_id: ProjectId,
    /// The subscribing App ID.
    pub app_id: String,
    /// Pub/sub component.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
    /// Dead-letter topic the app asked for, if any.
    pub dead_letter_topic: Option<String>,
    /// The gateway process holding the stream.
    pub holder: String,
}

impl Tx {
    // === streaming subscriptions ===

    /// Lists a stream until `expires_at` (Unix ms) unless renewed.
    pub async fn put_stream_subscription(&mut self, stream: &StreamSubscription, expires_at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO stream_subscriptions (id, project_id, app_id, pubsub, topic, dead_letter_topic, holder, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&stream.id)
        .bind(stream.project_id.as_str())
        .bind(&stream.app_id)
        .bind(&stream.pubsub)
        .bind(&stream.topic)
        .bind(&stream.dead_letter_topic)
        .bind(&stream.holder)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Keeps every stream of `holder` listed until `expires_at`, and forgets streams whose holder stopped
    /// renewing them.
    pub async fn renew_stream_subscriptions(&mut self, holder: &str, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE stream_subscriptions SET expires_at = $1 WHERE holder = $2")
            .bind(expires_at)
            .bind(holder)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM stream_subscriptions WHERE expires_at <= $1")
            .bind(now_millis())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stops listing one stream.
    pub async fn delete_stream_subscription(&mut self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM stream_subscriptions WHERE id = $1").bind(id).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Stops listing every stream of `holder` (it is shutting down).
    pub async fn delete_stream_subscriptions_of(&mut self, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM stream_subscriptions WHERE holder = $1").bind(holder).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// The App ID's open streams, on any gateway.
    pub async fn list_stream_subscriptions(
        &mut self,
        project_id: &ProjectId,
        app_id: &str,
    ) -> Result<Vec<StreamSubscription>> {
        let rows = sqlx::query(
            "SELECT id, project_id, app_id, pubsub, topic, dead_letter_topic, holder FROM stream_subscriptions \
             WHERE project_id = $1 AND app_id = $2 AND expires_at > $3 ORDER BY pubsub, topic, id",
        )
        .bind(project_id.as_str())
        .bind(app_id)
        .bind(now_millis())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StreamSubscription {
                    id: row.try_get("id")?,
                    project_id: ProjectId::of(row.try_get("project_id")?),
                    app_id: row.try_get("app_id")?,
                    pubsub: row.try_get("pubsub")?,
                    topic: row.try_get("topic")?,
                    dead_letter_topic: row.try_get("dead_letter_topic")?,
                    holder: row.try_get("holder")?,
                })
            })
            .collect()
    }
}
