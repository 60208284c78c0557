'use strict'
// A real Minecraft Java Edition server-list peer (minecraft-protocol, offline mode) for the tests.
// Config (JSON, argv[2] or PEER_CONFIG): port, controlPort, motd (string or JSON text component),
// maxPlayers, online, sample ([{name, id}]), version ({name, protocol}) to override what it reports,
// extra ({key: value}) for more top-level status fields, as Forge (`forgeData`, `modinfo`), NeoForge
// (`isModded`) and other servers add them, and omitSample (true: no `players.sample` at all).
// It counts status connections (handshakes with next state "status") and status requests, served on
// the control port (GET /stats). Prints "READY <port>" once listening.
const mc = require('minecraft-protocol')
const { startControl, readConfig } = require('./control')

const config = readConfig({
  port: 25565,
  controlPort: 0,
  motd: { text: '', extra: [{ text: 'A Minecraft Server', color: 'green' }, { text: '\n' }, { text: 'second line', color: 'gold', bold: true }] },
  maxPlayers: 20,
  online: 2,
  sample: [{ name: 'Steve', id: '8667ba71-b85a-4004-af54-457a9734eed7' }, { name: 'Alex', id: 'ec561538-f3fd-461d-aff5-086b22154bce' }],
  version: null,
  extra: null,
  omitSample: false
})
const stats = { status_connections: 0, status_requests: 0, connections: 0, last_handshake_host: '' }

const server = mc.createServer({
  host: '127.0.0.1',
  port: config.port,
  'online-mode': false,
  motd: typeof config.motd === 'string' ? config.motd : '',
  maxPlayers: config.maxPlayers,
  beforePing: (response, client) => {
    stats.status_requests++
    response.description = config.motd
    response.players.max = config.maxPlayers
    response.players.online = config.online
    response.players.sample = config.sample
    if (config.omitSample) delete response.players.sample
    if (config.version) response.version = config.version
    if (config.extra) Object.assign(response, config.extra)
    return response
  }
})

server.on('connection', (client) => {
  stats.connections++
  client.once('set_protocol', (packet) => {
    if (packet.nextState === 1) stats.status_connections++
    stats.last_handshake_host = packet.serverHost
  })
  client.on('error', () => {})
})
server.on('error', (err) => { console.error('server error', err) })
server.on('listening', () => {
  if (config.controlPort) startControl(config.controlPort, stats, config)
  console.log(`READY ${config.port}`)
})
process.on('SIGTERM', () => { server.close(); process.exit(0) })
