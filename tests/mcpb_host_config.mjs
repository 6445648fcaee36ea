// The command, arguments and environment a bundle host starts the server with, worked out by the
// host code that @anthropic-ai/mcpb publishes (getMcpConfigForManifest: ${__dirname}, ${HOME} and
// the like, ${user_config.<key>} from the user's values, then the manifest's defaults).
// Run under `npx --package @anthropic-ai/mcpb@<version> -- node mcpb_host_config.mjs <bundle dir> <user config JSON>`;
// prints the resolved mcp_config as JSON.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, sep } from "node:path";
import { pathToFileURL } from "node:url";

const [bundleDir, userConfigJson] = process.argv.slice(2);

// npx installs the package in a node_modules directory whose .bin it puts on PATH; import the package from there.
const binDir = process.env.PATH.split(delimiter).find((dir) => existsSync(join(dir, "mcpb")));
if (binDir === undefined) {
  throw new Error("the mcpb command is not on PATH: run this under npx --package @anthropic-ai/mcpb");
}
const packageDir = join(binDir, "..", "@anthropic-ai", "mcpb");
const { main } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf-8"));
const { getMcpConfigForManifest } = await import(pathToFileURL(join(packageDir, main)).href);

const home = homedir();
const config = await getMcpConfigForManifest({
  manifest: JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf-8")),
  extensionPath: bundleDir,
  systemDirs: { HOME: home, DESKTOP: join(home, "Desktop"), DOCUMENTS: join(home, "Documents"), DOWNLOADS: join(home, "Downloads") },
  userConfig: JSON.parse(userConfigJson),
  pathSeparator: sep,
});
if (config === undefined) {
  throw new Error("the host would not start this bundle (missing required configuration?)");
}
process.stdout.write(JSON.stringify(config));
