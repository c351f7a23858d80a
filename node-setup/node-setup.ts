import { join } from 'node:path';
import { NodeFileError } from './config-error.ts';
import { addEdgeboxRuntime } from './containerd-change.ts';
import { pointKubeconfigAtHub } from './kubeconfig-change.ts';
import { ManagedFile } from './managed-file.ts';
import type { ServiceAction, ServiceManager } from './service-manager.ts';

export const HUB_UNIT = 'edgebox-hub.service';
export const KUBELET_UNIT = 'kubelet.service';
export const CONTAINERD_UNIT = 'containerd.service';

/** The variable deploy/hub/edgebox-hub.service passes to --upstream-kubeconfig. */
export const HUB_UPSTREAM_VARIABLE = 'EDGEBOX_UPSTREAM_KUBECONFIG';

export interface NodePaths {
  /** kubelet's kubeconfig (kubeadm: /etc/kubernetes/kubelet.conf). */
  kubeletKubeconfig: string;
  /** containerd's config (/etc/containerd/config.toml). */
  containerdConfig: string;
  /** The hub unit's EnvironmentFile (/etc/default/edgebox-hub). */
  hubEnvironment: string;
}

export const DEFAULT_PATHS: NodePaths = {
  kubeletKubeconfig: '/etc/kubernetes/kubelet.conf',
  containerdConfig: '/etc/containerd/config.toml',
  hubEnvironment: '/etc/default/edgebox-hub',
};

export const DEFAULT_HUB_URL = 'http://127.0.0.1:10271';

export interface NodeSetupOptions {
  paths: NodePaths;
  /** Acts on the tree under this directory instead of / (the paths stay as the node sees them). */
  root?: string;
  hubUrl: string;
  /** Undefined: services are not touched (another tree, see --root), and the report says so. */
  services: ServiceManager | undefined;
  dryRun: boolean;
  /** One line per change, as it is made (or, with dryRun, would be). */
  report: (line: string) => void;
}

interface Rewrite {
  file: ManagedFile;
  /** The path as the node sees it. */
  shown: string;
  text: string;
  summary: string;
  /** The service that reads the file, restarted when it changes. */
  unit?: string;
}

/**
 * `edgebox node enable` / `disable`: puts a kubeadm-style node behind EdgeHub
 * and gives its containerd the edgebox runtime, and takes both back. Every
 * file is read and checked before any is written; each rewritten file's
 * original is kept beside it and put back, byte for byte, by disable.
 */
export class NodeSetup {
  private readonly options: NodeSetupOptions;

  constructor(options: NodeSetupOptions) {
    this.options = options;
  }

  private file(path: string): ManagedFile {
    return new ManagedFile(this.options.root ? join(this.options.root, path) : path);
  }

  private say(line: string): void {
    this.options.report(this.options.dryRun ? `would ${line}` : line);
  }

  private async service(action: ServiceAction, unit: string): Promise<void> {
    if (!this.options.services) {
      this.options.report(
        `skip: systemctl ${action} ${unit} (--root: not this machine's services)`,
      );
      return;
    }
    this.say(`run systemctl ${action} ${unit}`);
    if (!this.options.dryRun) await this.options.services.apply(action, unit);
  }

  private plan(): Rewrite[] {
    const { paths, hubUrl } = this.options;
    const baseOf = (file: ManagedFile, shown: string): string => {
      const text = file.baseText();
      if (text === undefined) throw new NodeFileError(shown, 'not found');
      return text;
    };
    const kubeconfig = this.file(paths.kubeletKubeconfig);
    const kube = pointKubeconfigAtHub(
      paths.kubeletKubeconfig,
      baseOf(kubeconfig, paths.kubeletKubeconfig),
      hubUrl,
    );
    const containerd = this.file(paths.containerdConfig);
    const runtime = addEdgeboxRuntime(
      paths.containerdConfig,
      baseOf(containerd, paths.containerdConfig),
    );
    const upstream = kubeconfig.originalPath.slice(this.options.root?.length ?? 0);
    return [
      {
        file: this.file(paths.hubEnvironment),
        shown: paths.hubEnvironment,
        text:
          '# Written by `edgebox node enable`: the hub forwards to the apiserver with\n' +
          "# kubelet's original kubeconfig, kept beside the one that now points at the hub.\n" +
          `${HUB_UPSTREAM_VARIABLE}=${upstream}\n`,
        summary: `${HUB_UPSTREAM_VARIABLE}=${upstream}`,
      },
      { file: containerd, shown: paths.containerdConfig, ...runtime, unit: CONTAINERD_UNIT },
      { file: kubeconfig, shown: paths.kubeletKubeconfig, ...kube, unit: KUBELET_UNIT },
    ];
  }

  private write(step: Rewrite): boolean {
    if (step.file.currentText() === step.text) {
      this.options.report(`unchanged: ${step.shown} (${step.summary})`);
      return false;
    }
    const first = step.file.original().kind === 'untouched';
    this.say(
      `change ${step.shown}: ${step.summary}` +
        (first && step.file.currentText() !== undefined
          ? ` (original kept as ${step.shown}.edgebox-orig)`
          : ''),
    );
    if (!this.options.dryRun) step.file.write(step.text);
    return true;
  }

  async enable(): Promise<void> {
    const [environment, containerd, kubeconfig] = this.plan();
    if (!environment || !containerd || !kubeconfig) throw new Error('incomplete plan');
    // The hub first: kubelet is pointed at it only once it runs with the original kubeconfig.
    const envChanged = this.write(environment);
    try {
      await this.service('enable --now', HUB_UNIT);
    } catch (err) {
      if (envChanged && !this.options.dryRun) environment.file.restore();
      throw err;
    }
    // Already running with another upstream kubeconfig: read the new one.
    if (envChanged) await this.service('restart', HUB_UNIT);
    for (const step of [containerd, kubeconfig]) {
      if (this.write(step) && step.unit) await this.service('restart', step.unit);
    }
  }

  async disable(): Promise<void> {
    const { paths } = this.options;
    const steps = [
      {
        file: this.file(paths.kubeletKubeconfig),
        shown: paths.kubeletKubeconfig,
        unit: KUBELET_UNIT,
      },
      {
        file: this.file(paths.containerdConfig),
        shown: paths.containerdConfig,
        unit: CONTAINERD_UNIT,
      },
      { file: this.file(paths.hubEnvironment), shown: paths.hubEnvironment, unit: undefined },
    ];
    if (steps.every((s) => s.file.original().kind === 'untouched')) {
      this.options.report('nothing to put back: edgebox node enable has not changed this node');
      return;
    }
    for (const step of steps) {
      const original = step.file.original();
      if (original.kind !== 'untouched') {
        this.say(
          original.kind === 'kept'
            ? `restore ${step.shown} from ${step.shown}.edgebox-orig`
            : `remove ${step.shown}`,
        );
        if (!this.options.dryRun) step.file.restore();
        if (step.unit) await this.service('restart', step.unit);
      }
      // kubelet back on the apiserver before the hub it used goes away.
      if (step.unit === KUBELET_UNIT) await this.service('disable --now', HUB_UNIT);
    }
  }
}
