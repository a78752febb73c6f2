// The Speckle sign-in of the current notebook's kernel, in JupyterLab's status bar (Notebook 7: its top bar).
//
// The state comes from the kernel itself, over a comm (target `speckle_nb_auth.status`, see
// speckle_nb_auth/_frontend_status.py): the kernel opens one when its sign-in session is made, and this
// extension opens one to every Python kernel it meets, which the kernel answers once it has a session. So it
// works with or without the server extension, and no token ever reaches the page: a summary holds names only.

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, ISessionContext, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Menu, Widget } from '@lumino/widgets';

import '../style/index.css';

const TARGET = 'speckle_nb_auth.status';
const LOGIN_CODE = 'from speckle_nb_auth import login\n\nlogin()';
const ANYWHERE = 'Run this in a notebook cell: from speckle_nb_auth import login; login()';

/** What the kernel says of its sign-in: never a token. */
interface Summary {
  signed_in: boolean;
  user?: string;
  email?: string;
  server?: string;
  server_name?: string;
  from?: string;
  scopes?: string[];
  token?: string;
  warning?: string;
  message?: string;
}

const SIGNED_OUT: Summary = { signed_in: false };

/** One notebook's kernel as the item sees it: its language and its latest summary. */
class KernelWatch {
  summary: Summary = SIGNED_OUT;
  python: boolean | null = null; // null until the kernel says which language it runs
  private comms = new Set<Kernel.IComm>();
  private waitingFor: ((summary: Summary) => void) | null = null;

  constructor(private context: ISessionContext, private changed: () => void) {
    context.kernelChanged.connect(() => this.connect(), this);
    context.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
        this.reset(); // a new kernel process has no sign-in until it signs in
      }
    }, this);
    context.connectionStatusChanged.connect((_, status) => {
      if (status === 'connected') {
        this.ask();
      }
    }, this);
    this.connect();
  }

  get kernel(): Kernel.IKernelConnection | null {
    return this.context.session?.kernel ?? null;
  }

  dispose(): void {
    this.comms.forEach(comm => comm.dispose());
    this.comms.clear();
  }

  /** Ask the kernel to log out; resolves with the summary that follows. */
  logOut(): Promise<Summary> {
    const comm = [...this.comms][0];
    if (!comm || comm.isDisposed) {
      return Promise.resolve(this.summary);
    }
    return new Promise(resolve => {
      this.waitingFor = resolve;
      comm.send({ do: 'logout' });
    });
  }

  private reset(): void {
    this.dispose();
    this.summary = SIGNED_OUT;
    this.changed();
  }

  private connect(): void {
    this.reset();
    this.python = null;
    const kernel = this.kernel;
    if (!kernel) {
      return;
    }
    kernel.registerCommTarget(TARGET, comm => this.attach(comm));
    void kernel.info.then(info => {
      this.python = info.language_info.name === 'python';
      this.changed();
      this.ask();
    });
  }

  /** Open a comm to the kernel: one that has a sign-in session answers with its summary, any other closes it. */
  private ask(): void {
    const kernel = this.kernel;
    if (!kernel || !this.python || this.comms.size > 0) {
      return;
    }
    const comm = kernel.createComm(TARGET);
    this.attach(comm);
    comm.open({}).done.catch(() => this.comms.delete(comm));
  }

  private attach(comm: Kernel.IComm): void {
    this.comms.add(comm);
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => this.receive(msg.content.data as unknown as Summary);
    comm.onClose = () => {
      this.comms.delete(comm);
    };
  }

  private receive(summary: Summary): void {
    if (typeof summary?.signed_in !== 'boolean') {
      return;
    }
    this.summary = summary;
    const waiting = this.waitingFor;
    this.waitingFor = null;
    waiting?.(summary);
    this.changed();
  }
}

/** The item: "Speckle: not signed in" or "Speckle: Ada Lovelace on <server>", a menu on click or Enter. */
class StatusItem extends Widget {
  constructor(private openMenu: (x: number, y: number, fromKeyboard: boolean) => void) {
    super({ node: document.createElement('button') });
    this.addClass('snb-status-item');
    const node = this.node as HTMLButtonElement;
    node.type = 'button';
    node.setAttribute('aria-haspopup', 'menu');
    node.addEventListener('click', event => {
      const box = node.getBoundingClientRect();
      // below an item at the top (Notebook 7's top bar), above one at the bottom (Lumino flips it up there)
      const y = box.top < window.innerHeight / 2 ? box.bottom : box.top;
      this.openMenu(box.left, y, event.detail === 0); // detail 0: Enter or Space, not a pointer
    });
  }

  show_(watch: KernelWatch | null): void {
    if (!watch || watch.python !== true) {
      this.hide();
      return;
    }
    this.show();
    const s = watch.summary;
    const node = this.node as HTMLButtonElement;
    const text = s.signed_in ? `Speckle: ${s.user || s.email} on ${s.server_name || s.server}` : 'Speckle: not signed in';
    node.textContent = s.signed_in && s.warning ? `\u26a0 ${text}` : text;
    node.classList.toggle('snb-status-warn', Boolean(s.signed_in && s.warning));
    node.classList.toggle('snb-status-in', s.signed_in);
    const lines = s.signed_in
      ? [
          `Signed in to ${s.server_name} (${s.server}) as ${s.user} <${s.email}>`,
          `From ${s.from}`,
          `Scopes: ${s.scopes && s.scopes.length ? s.scopes.join(', ') : 'not known'}`,
          s.token ? `Token ${s.token}` : 'Token age: not told for an app\u2019s token',
          s.warning ?? ''
        ]
      : ['This notebook\u2019s kernel is not signed in to Speckle.'];
    node.title = [...lines.filter(Boolean), 'Click for Log in, Log out, and the snippet for a script.'].join('\n');
    node.setAttribute('aria-label', `${text}${s.signed_in && s.warning ? `. ${s.warning}` : ''}. Speckle menu`);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'speckle-nb-auth:status',
  description: "The Speckle sign-in of the current notebook's kernel, in the status bar.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const watches = new Map<NotebookPanel, KernelWatch>();
    const current = (): KernelWatch | null => (tracker.currentWidget ? watches.get(tracker.currentWidget) ?? null : null);
    const menu = new Menu({ commands: app.commands });
    menu.addClass('snb-status-menu');
    const item = new StatusItem((x, y, fromKeyboard) => {
      menu.open(x, y); // Lumino opens it upwards where it would leave the window
      if (fromKeyboard) {
        menu.activeIndex = 0;
        menu.node.focus();
      }
    });
    item.id = 'speckle-nb-auth-status';
    const refresh = (): void => {
      item.show_(current());
      app.commands.notifyCommandChanged();
    };
    tracker.widgetAdded.connect((_, panel) => {
      const watch = new KernelWatch(panel.sessionContext, refresh);
      watches.set(panel, watch);
      panel.disposed.connect(() => {
        watch.dispose();
        watches.delete(panel);
        refresh();
      });
    });
    tracker.currentChanged.connect(refresh);

    app.commands.addCommand('speckle-nb-auth:login', {
      label: args => (args.inMenu ? 'Log in' : 'Speckle: Log in'),
      caption: 'Add a cell that runs login() below the active cell, and run it',
      execute: () => {
        const panel = tracker.currentWidget;
        if (!panel || current()?.python !== true) {
          Notification.info(`No notebook with a Python kernel is open. ${ANYWHERE}`, { autoClose: 8000 });
          return;
        }
        // a cell of its own: the login panel shows in the notebook, where the person is
        NotebookActions.insertBelow(panel.content);
        const cell = panel.content.activeCell;
        if (cell) {
          cell.model.sharedModel.setSource(LOGIN_CODE);
          void NotebookActions.run(panel.content, panel.sessionContext);
        }
      }
    });
    app.commands.addCommand('speckle-nb-auth:logout', {
      label: args => (args.inMenu ? 'Log out' : 'Speckle: Log out'),
      caption: "Log out of Speckle in the current notebook's kernel",
      isEnabled: () => current()?.summary.signed_in === true,
      execute: async () => {
        const watch = current();
        if (!watch?.summary.signed_in) {
          return;
        }
        const after = await watch.logOut();
        if (after.message) {
          Notification.info(after.message, { autoClose: 10000 });
        }
      }
    });
    app.commands.addCommand('speckle-nb-auth:copy-snippet', {
      label: args => (args.inMenu ? 'Copy the snippet for a script' : 'Speckle: Copy the snippet for a script'),
      caption: 'Copy Python that signs a script in to this server',
      execute: () => {
        const server = current()?.summary.server || 'https://app.speckle.systems';
        Clipboard.copyToSystem(
          '# A script signs in without a panel: set SPECKLE_TOKEN to a personal access token, or run once\n' +
            `#   python -m speckle_nb_auth login ${server}\n` +
            'from speckle_nb_auth import login\n\n' +
            `speckle = login("${server}")\n`
        );
        Notification.success('Copied: paste it into your script.', { autoClose: 4000 });
      }
    });
    for (const command of ['speckle-nb-auth:login', 'speckle-nb-auth:logout', 'speckle-nb-auth:copy-snippet']) {
      menu.addItem({ command, args: { inMenu: true } }); // the item says "Speckle" already
    }
    palette?.addItem({ command: 'speckle-nb-auth:login', category: 'Speckle' });
    palette?.addItem({ command: 'speckle-nb-auth:logout', category: 'Speckle' });

    if (statusBar) {
      statusBar.registerStatusItem(item.id, { item, align: 'left', rank: 100 });
    } else {
      app.shell.add(item, 'top', { rank: 900 }); // Notebook 7 has no status bar
    }
    refresh();
  }
};

export default plugin;
