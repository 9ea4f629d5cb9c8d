// A paged list: the first page, then a "Load more" button that fetches the page after while the API hands a
// continuation token (lists are never fetched whole).

import { errorPanel, h } from "./dom.js";

/**
 * `fetchPage(continuationToken)` answers `{ items, continuationToken? }`; `view(items)` draws every item so
 * far. `first()` resolves to the element, which redraws in place as pages arrive; a page that fails to load
 * shows its error there, so the rest of the page stays usable.
 */
export function pager(fetchPage, view) {
  const items = [];
  const holder = h("div", { class: "paged" });
  let token;
  const draw = () => {
    const more = token ? h("button", { type: "button", class: "secondary more", onclick: next }, "Load more") : "";
    holder.replaceChildren(view(items), more);
  };
  async function next() {
    try {
      const page = await fetchPage(token);
      items.push(...page.items);
      token = page.continuationToken;
      draw();
    } catch (error) {
      holder.append(errorPanel(error));
    }
  }
  return {
    async first() {
      await next();
      return holder;
    },
  };
}
