// A project's Dapr resources, one tab per kind (components, subscriptions, resiliencies, configurations, HTTP
// endpoints): the list a page at a time, viewing one as YAML, deleting one; a form per component type built
// from the component registry (`GET /component-types`); and the YAML editor, where any YAML (several
// documents too) is validated by a dry-run apply that shows what would change, with the error's line marked
// when the server refuses it, before it is applied. Export downloads the whole project as YAML. The managed
// components are listed, read-only.

import { all, api, seg } from "../lib/api.js";
import { confirmAction, copyBlock, errorPanel, field, form, h, heading, modal, table } from "../lib/dom.js";
import { diffCounts, diffView, lineDiff } from "../lib/diff.js";
import { pager } from "../lib/pager.js";
import { locateError, splitDocuments, toYaml, yamlEditor } from "../lib/yaml-editor.js";

/** The kinds, by the collection name the routes use. */
const KINDS = {
  components: { label: "Components", kind: "Component", noun: "component" },
  subscriptions: { label: "Subscriptions", kind: "Subscription", noun: "subscription" },
  resiliencies: { label: "Resiliencies", kind: "Resiliency", noun: "resiliency" },
  configurations: { label: "Configurations", kind: "Configuration", noun: "configuration" },
  httpendpoints: { label: "HTTP endpoints", kind: "HTTPEndpoint", noun: "HTTP endpoint" },
};

/** Collection of each document kind (for reading the stored version of what an apply would update). */
const COLLECTION_OF = Object.fromEntries(Object.entries(KINDS).map(([collection, { kind }]) => [kind, collection]));

const WITHHELD = "outrigger.io/withheld";

/** What a Dapr resource name must look like (as an `<input pattern>`): dot-separated parts. */
const RESOURCE_NAME = "[A-Za-z0-9]([A-Za-z0-9_\\-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9_\\-]*[A-Za-z0-9])?)*";

/** A starting point for writing each kind by hand. */
const TEMPLATES = {
  components: `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
`,
  subscriptions: `apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    default: /orders
`,
  resiliencies: `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: resiliency
spec:
  policies:
    timeouts:
      general: 5s
    retries:
      standard:
        policy: constant
        duration: 1s
        maxRetries: 3
  targets:
    components:
      kvstore:
        outbound:
          timeout: general
          retry: standard
`,
  configurations: `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  tracing:
    samplingRate: "1"
`,
  httpendpoints: `apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: example
spec:
  baseUrl: https://api.example.com
`,
};

export default async function resources(context) {
  const project = context.project;
  const collection = context.params.kind ?? "components";
  const kind = KINDS[collection];
  if (!kind) {
    throw new Error(`There is no resource kind "${collection}": choose one of the tabs (${Object.keys(KINDS).join(", ")}).`);
  }
  const canWrite = context.can("developer");
  const base = `/projects/${seg(project)}`;
  const details = await api("GET", base);

  const editorSlot = h("div", { class: "editor-slot" });
  const listSlot = h("div", { class: "list-slot" });
  const page = {
    project,
    base,
    collection,
    kind,
    canWrite,
    editorSlot,
    reloadList: async () => listSlot.replaceChildren(await resourceList(page)),
    openEditor: (options) => openEditor(page, options),
  };

  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Resource kinds" },
    Object.entries(KINDS).map(([name, { label }]) =>
      h("a", { href: `#/p/${seg(project)}/resources/${name}`, "aria-current": name === collection ? "page" : false }, label),
    ),
  );
  const exportFailure = h("div", { class: "export-failure" });
  const actions = [
    canWrite && collection === "components" && h("button", { type: "button", onclick: () => newComponent(page) }, "New component"),
    canWrite &&
      h(
        "button",
        { type: "button", class: collection === "components" ? "secondary" : null, onclick: () => page.openEditor({ title: `New ${kind.noun} (YAML)`, yaml: TEMPLATES[collection] }) },
        collection === "components" ? "Write YAML" : `New ${kind.noun}`,
      ),
    h("button", { type: "button", class: "secondary", onclick: () => exportProject(project, exportFailure) }, "Export"),
  ];

  await page.reloadList();
  return h(
    "div",
    { class: "resources-page" },
    heading("Components & resources", ...actions),
    tabs,
    exportFailure,
    editorSlot,
    collection === "components" && managedComponents(details.managedComponents ?? []),
    h("h2", { class: "list-title" }, kind.label),
    listSlot,
  );
}

/** The platform's components of the project: shown, never edited. */
function managedComponents(managed) {
  if (!managed.length) return null;
  return h(
    "section",
    { class: "card managed" },
    h("h2", {}, "Managed components"),
    h("p", { class: "hint" }, "The platform provides these to every App ID of the project: they are read-only, and their names are reserved."),
    table(
      [
        { title: "Name", class: "nowrap", cell: (component) => h("code", {}, component.name) },
        { title: "Type", cell: (component) => component.type },
        { title: "", cell: () => h("span", { class: "badge" }, "read-only") },
      ],
      managed,
    ),
  );
}

/** One line saying what a document does, by kind. */
function summary(document) {
  const spec = document.spec ?? {};
  switch (document.kind) {
    case "Component":
      return `${spec.type ?? "?"} ${spec.version ?? ""}`.trim();
    case "Subscription":
      return `topic ${spec.topic ?? "?"} on ${spec.pubsubname ?? "?"}${spec.deadLetterTopic ? `, dead letters to ${spec.deadLetterTopic}` : ""}`;
    case "HTTPEndpoint":
      return spec.baseUrl ?? "";
    default:
      return Object.keys(spec).join(", ");
  }
}

/** The names of the values the server keeps but does not show, from the document's annotation. */
function withheldOf(document) {
  const listed = document.metadata?.annotations?.[WITHHELD];
  return listed ? listed.split(",").filter(Boolean) : [];
}

/** Explains the `outrigger.io/withheld` annotation of a document. */
function withheldNotice(names) {
  if (!names.length) return null;
  return h(
    "div",
    { class: "secret withheld" },
    h("strong", {}, "Secret values withheld: "),
    h("code", {}, names.join(", ")),
    h(
      "p",
      {},
      `The server keeps these values but never shows them: the YAML leaves them out and lists them in the ${WITHHELD} annotation. ` +
        "Applying the YAML as it is keeps the stored values; to change one, write its new value (or a secretKeyRef) in the document.",
    ),
  );
}

async function resourceList(page) {
  const { base, collection, kind, canWrite } = page;
  const failure = h("div", {});
  const list = pager(
    (continuationToken) => api("GET", `${base}/${collection}`, { query: { limit: 50, continuationToken } }),
    (items) =>
      table(
        [
          { title: "Name", class: "nowrap", cell: (document) => h("code", {}, document.metadata.name) },
          { title: kind.kind === "Component" ? "Type" : "Spec", cell: summary },
          { title: "Scopes", cell: (document) => (document.scopes?.length ? document.scopes.join(", ") : "all App IDs") },
          {
            title: "Secrets",
            cell: (document) => {
              const withheld = withheldOf(document);
              return withheld.length ? h("span", { class: "badge warn", title: withheld.join(", ") }, `${withheld.length} withheld`) : "—";
            },
          },
          {
            title: "",
            class: "row-actions nowrap",
            cell: (document) => {
              const name = document.metadata.name;
              return h(
                "div",
                { class: "actions" },
                h("button", { type: "button", class: "secondary", "aria-label": `View ${name}`, onclick: () => viewResource(page, name, failure) }, "View"),
                canWrite && h("button", { type: "button", class: "secondary", "aria-label": `Edit ${name}`, onclick: () => editResource(page, name, failure) }, "Edit"),
                canWrite && h("button", { type: "button", class: "secondary", "aria-label": `Delete ${name}`, onclick: () => deleteResource(page, name, failure) }, "Delete"),
              );
            },
          },
        ],
        items,
        canWrite ? `No ${kind.label.toLowerCase()} yet: add one with the buttons above, or apply YAML.` : `No ${kind.label.toLowerCase()} yet.`,
      ),
  );
  return h("div", {}, failure, await list.first());
}

const yamlOf = (page, collection, name) => api("GET", `${page.base}/${collection}/${seg(name)}`, { accept: "application/yaml" });

async function viewResource(page, name, failure) {
  failure.replaceChildren();
  try {
    const yaml = await yamlOf(page, page.collection, name);
    const withheld = splitDocuments(yaml)[0]?.withheld;
    modal(
      `${page.kind.kind} ${name}`,
      h("div", { class: "stack" }, withheldNotice(withheld ? withheld.split(",") : []), h("pre", { class: "yaml-view", tabindex: "0" }, yaml)),
    );
  } catch (error) {
    failure.replaceChildren(errorPanel(error));
  }
}

async function editResource(page, name, failure) {
  failure.replaceChildren();
  try {
    const yaml = await yamlOf(page, page.collection, name);
    page.openEditor({ title: `Edit ${page.kind.noun} ${name}`, yaml });
  } catch (error) {
    failure.replaceChildren(errorPanel(error));
  }
}

async function deleteResource(page, name, failure) {
  failure.replaceChildren();
  if (!(await confirmAction(`Delete ${page.kind.noun} ${name}? App IDs using it lose it at once.`))) return;
  try {
    await api("DELETE", `${page.base}/${page.collection}/${seg(name)}`);
    await page.reloadList();
  } catch (error) {
    failure.replaceChildren(errorPanel(error));
  }
}

/** Downloads `GET /projects/{p}/export` as `<project>.yaml`. */
async function exportProject(project, failure) {
  failure.replaceChildren();
  try {
    const yaml = await api("GET", `/projects/${seg(project)}/export`, { accept: "application/yaml" });
    const url = URL.createObjectURL(new Blob([yaml ?? ""], { type: "application/yaml" }));
    const link = h("a", { href: url, download: `${project}.yaml`, class: "hidden-download" });
    document.body.append(link);
    link.click();
    link.remove();
    // The download has its own reference to the data once started; the URL is not needed after this turn.
    setTimeout(() => URL.revokeObjectURL(url), 0);
  } catch (error) {
    failure.replaceChildren(errorPanel(error));
  }
}

/** The panel where a form or the YAML editor opens (one at a time), scrolled into view. */
function showPanel(page, title, ...content) {
  const panel = h(
    "section",
    { class: "card resource-editor", "aria-label": title },
    h("header", { class: "panel-head" }, h("h2", {}, title), h("button", { type: "button", class: "secondary", onclick: () => page.editorSlot.replaceChildren() }, "Close")),
    content,
  );
  page.editorSlot.replaceChildren(panel);
  panel.scrollIntoView({ block: "start" });
  return panel;
}

let editorPanels = 0;

/**
 * The YAML editor for `yaml`: "Validate / preview" runs a dry-run apply and shows what would change (or the
 * refusal, its line marked); "Apply" applies what was previewed, then the list reloads.
 */
function openEditor(page, { title, yaml, intro }) {
  const errorId = `editor-error-${++editorPanels}`;
  const editor = yamlEditor({ label: "YAML (one or more documents, separated by ---)", value: yaml, describedBy: errorId });
  const withheldSlot = h("div", {});
  const errorSlot = h("div", { id: errorId, class: "editor-error", "aria-live": "polite" });
  const previewSlot = h("div", { class: "apply-preview", "aria-live": "polite" });
  const previewButton = h("button", { type: "button" }, "Validate / preview");
  const applyButton = h("button", { type: "button", disabled: true }, "Apply");
  let previewed = null;

  const showWithheld = () => {
    const names = splitDocuments(editor.value).flatMap((document) => (document.withheld ? document.withheld.split(",") : []));
    withheldSlot.replaceChildren(withheldNotice(names) ?? "");
  };
  showWithheld();
  editor.onInput(() => {
    // What is applied is what was previewed: any edit asks for a new preview.
    previewed = null;
    applyButton.disabled = true;
    showWithheld();
  });

  const showFailure = (error, text) => {
    if (error.status !== 400 || !error.details) {
      errorSlot.replaceChildren(errorPanel(error));
      return;
    }
    const where = locateError(text, error);
    const document = where.document && splitDocuments(text)[where.document - 1];
    const named = document?.kind ? ` (${document.kind}${document.name ? ` ${document.name}` : ""})` : "";
    const place = [where.document && `document ${where.document}${named}`, where.line && `line ${where.line}`].filter(Boolean).join(", ");
    errorSlot.replaceChildren(
      errorPanel(error),
      place &&
        h(
          "p",
          { class: "error-place" },
          `The error is in ${place}. `,
          where.line && h("button", { type: "button", class: "link", onclick: () => editor.mark(where.line, where.column ?? 1) }, `Go to line ${where.line}`),
        ),
    );
    if (where.line) editor.mark(where.line, where.column ?? 1);
  };

  previewButton.addEventListener("click", async () => {
    const text = editor.value;
    errorSlot.replaceChildren();
    previewSlot.replaceChildren();
    editor.clearMark();
    applyButton.disabled = true;
    previewButton.disabled = true;
    try {
      const result = await api("POST", `${page.base}/apply`, { query: { dryRun: true }, body: text, contentType: "application/yaml" });
      previewSlot.replaceChildren(await previewView(page, result, text));
      previewed = text;
      applyButton.disabled = !page.canWrite || !hasChanges(result);
    } catch (error) {
      showFailure(error, text);
    } finally {
      previewButton.disabled = false;
    }
  });

  applyButton.addEventListener("click", async () => {
    if (previewed === null) return;
    const text = previewed;
    errorSlot.replaceChildren();
    applyButton.disabled = true;
    try {
      const result = await api("POST", `${page.base}/apply`, { body: text, contentType: "application/yaml" });
      const done = ["created", "updated", "deleted"]
        .filter((outcome) => result[outcome].length)
        .map((outcome) => `${outcome} ${result[outcome].map((r) => `${r.kind} ${r.name}`).join(", ")}`);
      const tokens = result.created.filter((r) => r.apiToken);
      page.editorSlot.replaceChildren(
        h(
          "div",
          { class: "notice", role: "status" },
          h("strong", {}, "Applied: "),
          done.length ? done.join("; ") : "nothing changed",
          tokens.length > 0 &&
            h(
              "div",
              { class: "secret" },
              h("p", {}, "API tokens of the new App IDs, shown this once: copy them now."),
              tokens.map((ref) => h("div", {}, h("strong", {}, ref.name), copyBlock(ref.apiToken))),
            ),
          h("button", { type: "button", class: "link", onclick: () => page.editorSlot.replaceChildren() }, "Dismiss"),
        ),
      );
      await page.reloadList();
    } catch (error) {
      showFailure(error, text);
    }
  });

  showPanel(
    page,
    title,
    intro && h("p", { class: "hint" }, intro),
    withheldSlot,
    editor.element,
    errorSlot,
    h("div", { class: "actions" }, previewButton, applyButton),
    previewSlot,
  );
  editor.textarea.focus({ preventScroll: true });
  return editor;
}

const hasChanges = (result) => result.created.length + result.updated.length + result.deleted.length > 0;

/** What a dry run said would happen, with a line diff for each document it would update. */
async function previewView(page, result, text) {
  const documents = splitDocuments(text);
  const label = (ref) => `${ref.kind} ${ref.name}`;
  const sections = [];
  const outcomes = [
    ["created", "Created"],
    ["updated", "Updated"],
    ["unchanged", "Unchanged"],
    ["deleted", "Deleted"],
  ];
  for (const [outcome, title] of outcomes) {
    const refs = result[outcome] ?? [];
    if (!refs.length) continue;
    const items = [];
    for (const ref of refs) {
      if (outcome !== "updated") {
        items.push(h("li", {}, label(ref)));
        continue;
      }
      items.push(h("li", {}, label(ref), await updateDiff(page, ref, documents)));
    }
    sections.push(h("section", { class: `outcome ${outcome}`, "data-outcome": outcome }, h("h3", {}, `${title} (${refs.length})`), h("ul", {}, items)));
  }
  return h(
    "div",
    {},
    h("p", { class: "hint" }, "Preview only: nothing has been applied yet."),
    sections.length ? sections : h("p", { class: "empty" }, "The YAML holds no documents: applying it changes nothing."),
  );
}

/** The line diff between the stored YAML of `ref` and its document in the editor. */
async function updateDiff(page, ref, documents) {
  const collection = COLLECTION_OF[ref.kind];
  const written = documents.find((document) => document.kind === ref.kind && document.name === ref.name);
  if (!collection || !written) return h("p", { class: "hint" }, "No line diff for this kind of document.");
  try {
    const stored = await yamlOf(page, collection, ref.name);
    const lines = lineDiff(stored, written.text);
    const { added, removed } = diffCounts(lines);
    return h("div", { class: "diff-block" }, h("small", {}, `${removed} line(s) removed, ${added} added, against what is stored:`), diffView(lines, { label: `Changes to ${ref.kind} ${ref.name}` }));
  } catch (error) {
    return errorPanel(error);
  }
}

/** The component form: a type from the registry, its version, a name, its metadata fields and scopes. */
async function newComponent(page) {
  let registry;
  let appIds;
  try {
    [registry, appIds] = await Promise.all([api("GET", "/component-types"), all(`${page.base}/appids`, {}, 1000)]);
  } catch (error) {
    showPanel(page, "New component", errorPanel(error));
    return;
  }
  const nouns = Object.fromEntries(registry.buildingBlocks.map((block) => [block.name, block.noun]));
  const typeSelect = h(
    "select",
    { name: "type", required: true },
    registry.buildingBlocks.map((block) =>
      h(
        "optgroup",
        { label: block.noun },
        registry.types.filter((type) => type.buildingBlock === block.name).map((type) => h("option", { value: type.type }, type.type)),
      ),
    ),
  );
  const versionSelect = h("select", { name: "version", required: true });
  const fieldsSlot = h("div", { class: "stack component-fields" });
  const typeOf = () => registry.types.find((type) => type.type === typeSelect.value);

  const drawFields = () => {
    const type = typeOf();
    versionSelect.replaceChildren(...type.versions.map((version) => h("option", { value: version }, version)));
    const input = (meta) =>
      field({
        label: meta.required ? `${meta.name} (required)` : meta.name,
        name: `meta:${meta.name}`,
        required: meta.required,
        type: meta.sensitive ? "password" : "text",
        autocomplete: meta.sensitive ? "new-password" : "off",
        // An empty field takes the type's default: say which, so leaving it empty is a choice made knowingly.
        placeholder: meta.default !== undefined ? `default: ${meta.default}` : meta.file ? "data.db" : null,
        hint: [
          meta.sensitive && "A secret: kept by the server, never shown again.",
          meta.file && "A file, relative to the project's own directory.",
          meta.description,
        ]
          .filter(Boolean)
          .join(" "),
      });
    const required = type.fields.filter((meta) => meta.required);
    const optional = type.fields.filter((meta) => !meta.required);
    const parts = [
      h("p", { class: "hint" }, `A ${nouns[type.buildingBlock] ?? type.buildingBlock}. Leave a field empty to leave it out.`),
      ...required.map(input),
    ];
    if (optional.length) {
      parts.push(h("details", { class: "optional-fields" }, h("summary", {}, `Optional fields (${optional.length})`), h("div", { class: "stack" }, optional.map(input))));
    }
    fieldsSlot.replaceChildren(...parts);
  };
  typeSelect.addEventListener("change", drawFields);
  drawFields();

  const scopes = appIds.length
    ? h(
        "fieldset",
        { class: "scopes" },
        h("legend", {}, "Scopes: the App IDs that may use it (none checked: all of them)"),
        appIds.map((app) => h("label", { class: "field inline" }, h("input", { type: "checkbox", name: "scope", value: app.name }), app.name)),
      )
    : h("p", { class: "hint" }, "The project has no App IDs yet: the component will serve every App ID it gets.");

  const componentForm = form(
    [
      field({ label: "Type", control: typeSelect }),
      field({ label: "Version", control: versionSelect }),
      field({ label: "Name", name: "name", required: true, pattern: RESOURCE_NAME, maxlength: 253, hint: "What apps call it, such as statestore: letters, digits, - and _, parts separated by dots." }),
      fieldsSlot,
      scopes,
    ],
    async (_values, element) => {
      const data = new FormData(element);
      const metadata = [];
      for (const [key, value] of data.entries()) {
        if (key.startsWith("meta:") && String(value) !== "") metadata.push({ name: key.slice(5), value: String(value) });
      }
      const document = {
        apiVersion: "dapr.io/v1alpha1",
        kind: "Component",
        metadata: { name: String(data.get("name")) },
        spec: { type: String(data.get("type")), version: String(data.get("version")), metadata },
        scopes: data.getAll("scope").map(String),
      };
      page.openEditor({
        title: `New component ${document.metadata.name}`,
        yaml: `${toYaml(document)}\n`,
        intro: "The form wrote this document. Check it (or edit it), then Validate / preview, then Apply.",
      });
    },
    "Build YAML",
  );
  showPanel(page, "New component", componentForm);
}
