// Pages with nothing live of their own: the header, and local times.

import { formatDateTime } from "./format.js";
import { startShell } from "./shell.js";

const { clock } = await startShell();
for (const time of document.querySelectorAll("time[datetime]")) {
  time.textContent = formatDateTime(time.dateTime, clock);
}
