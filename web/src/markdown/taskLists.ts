/**
 * GFM task list items: "- [ ] todo" and "- [x] done" become disabled checkboxes.
 *
 * A core rule after "inline": a list item whose first paragraph starts with "[ ] ", "[x] " or
 * "[X] " gets a leading checkbox token, and its list the class "contains-task-list".
 */

import type { MarkdownIt } from "markdown-it";
import type { StateCore, Token } from "markdown-it";

const MARKER = /^\[([ xX])\][ \t]/;

export function taskLists(md: MarkdownIt): void {
  md.core.ruler.after("inline", "task_lists", (state: StateCore) => {
    const tokens = state.tokens;
    for (let i = 2; i < tokens.length; i++) {
      const inline = tokens[i] as Token;
      if (
        inline.type !== "inline" ||
        tokens[i - 1]?.type !== "paragraph_open" ||
        tokens[i - 2]?.type !== "list_item_open"
      ) {
        continue;
      }
      const match = MARKER.exec(inline.content);
      const firstText = inline.children?.[0];
      if (!match || !firstText || firstText.type !== "text" || !MARKER.test(firstText.content)) continue;
      firstText.content = firstText.content.replace(MARKER, "");
      inline.content = inline.content.replace(MARKER, "");
      const checkbox = new state.Token("task_checkbox", "input", 0);
      checkbox.meta = { checked: match[1] !== " " };
      inline.children?.unshift(checkbox);
      (tokens[i - 2] as Token).attrJoin("class", "task-list-item");
      for (let j = i - 3; j >= 0; j--) {
        const open = tokens[j] as Token;
        if (open.level === (tokens[i - 2] as Token).level - 1 && open.nesting === 1) {
          if (!String(open.attrGet("class") ?? "").includes("contains-task-list"))
            open.attrJoin("class", "contains-task-list");
          break;
        }
      }
    }
  });
  md.renderer.rules.task_checkbox = (tokens, idx) => {
    const checked = (tokens[idx]?.meta as { checked?: boolean } | undefined)?.checked === true;
    // Named for screen readers (and axe's "label" rule): the item's text follows, outside it.
    const state = checked ? ' checked aria-label="Done"' : ' aria-label="To do"';
    return `<input class="task-list-item-checkbox" type="checkbox" disabled${state}> `;
  };
}
