import { MongoClient } from 'mongodb';
const c = new MongoClient('mongodb://127.0.0.1:27999/'); await c.connect();
const db = c.db(process.argv[2]);
console.log(JSON.stringify(await db.collection('rollup_state').find().toArray()));
console.log(await db.collection('events').countDocuments());
console.log(JSON.stringify(await db.listCollections().toArray().then(a => a.map(x => x.name))));
await c.close();
