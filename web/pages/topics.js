// The topic explorer of a project's managed broker `pubsub`: each topic its subscriptions name, with the messages
// it keeps and, per subscription (App ID), what its consumer group has not acknowledged yet and how many messages
// went to its dead-letter topic. Counts are what the broker says when the page loads; Refresh asks again.

import { api, seg } from "../lib/api.js";
import { badge, errorPanel, h, heading, table } from "../lib/dom.js";

/** What each kind of subscription is, for the reader. */
const KINDS = {
  declarative: "Subscription resource",
  programmatic: "/dapr/subscribe",
  streaming: "streaming",
  group: "consumer group only",
};

/** A count, with "+" when the broker stopped counting at the limit. */
function count(value, limit) {
  if (value === undefined || value === null) return "—";
  return value >= limit ? `${limit}+` : String(value);
}

export default async function topics(context) {
  const project = context.project;
  let answer;
  try {
    answer = await api("GET", `/projects/${seg(project)}/topics`);
  } catch (error) {
    return h("div", { class: "topics-page" }, heading("Topics"), errorPanel(error));
  }
  const limit = answer.countLimit;
  const items = answer.items ?? [];
  const totalPending = items.flatMap((topic) => topic.subscriptions).reduce((sum, sub) => sum + (sub.pending ?? 0), 0);

  return h(
    "div",
    { class: "topics-page" },
    heading("Topics", h("button", { type: "button", class: "secondary", onclick: () => context.reload() }, "Refresh")),
    h("p", { class: "lead" }, "Topics of the project's managed broker ", h("code", {}, "pubsub"), ": what each subscription has not received yet, and what went to dead-letter topics."),
    !answer.groupsListed &&
      h("p", { class: "notice" }, "This broker cannot list consumer groups per project: subscriptions an app declares in /dapr/subscribe show only where this server delivers them."),
    items.length
      ? [
          h(
            "div",
            { class: "grid" },
            h("div", { class: "card stat" }, h("strong", {}, String(items.length)), h("span", {}, "topics")),
            h("div", { class: "card stat" }, h("strong", {}, count(totalPending, limit)), h("span", {}, "messages pending delivery")),
          ),
          items.map((topic) => topicCard(project, topic, limit)),
        ]
      : h(
          "p",
          { class: "empty" },
          "No topics yet: declare a Subscription on pubsub under ",
          h("a", { href: `#/p/${seg(project)}/resources` }, "Components & resources"),
          ", or have an App ID subscribe (its /dapr/subscribe route, or a streaming subscription).",
        ),
  );
}

function topicCard(project, topic, limit) {
  const subscriptions = table(
    [
      { title: "App ID", cell: (sub) => h("a", { href: `#/p/${seg(project)}/appids/${seg(sub.appId)}` }, sub.appId) },
      { title: "Declared by", cell: (sub) => (sub.name ? `${KINDS[sub.kind]} ${sub.name}` : KINDS[sub.kind] ?? sub.kind) },
      {
        title: "Pending",
        class: "num",
        cell: (sub) =>
          sub.pending === undefined
            ? h("span", { class: "muted", title: "No consumer group yet: delivery has not started (does the App ID have an app endpoint?)" }, "—")
            : h("span", { class: sub.pending > 0 ? "badge warn" : "badge good" }, count(sub.pending, limit)),
      },
      { title: "Dead-letter topic", cell: (sub) => sub.deadLetterTopic ?? "—" },
      { title: "Dead-lettered", class: "num", cell: (sub) => (sub.deadLetterTopic ? count(sub.deadLettered, limit) : "—") },
    ],
    topic.subscriptions,
    "No subscription: messages published here wait for the first one (kept 24 h).",
  );
  return h(
    "section",
    { class: "card topic", "aria-label": `Topic ${topic.topic}` },
    h("h2", {}, h("span", { class: "mono" }, topic.topic), " ", topic.deadLetter && badge("dead-letter topic")),
    h("p", { class: "hint" }, `${count(topic.messages, limit)} message${topic.messages === 1 ? "" : "s"} kept`),
    subscriptions,
  );
}
