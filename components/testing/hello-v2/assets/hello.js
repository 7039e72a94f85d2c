console.log('hello v2');
